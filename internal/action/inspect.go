package action

import (
	"regexp"
	"strings"
)

// LabelUntrusted is the session label an inspection hit adds: the session
// has read content that tries to instruct the model, so policies may demand
// approval for egress tools afterwards.
const LabelUntrusted = "untrusted"

// Finding is one suspicious passage in a tool result.
type Finding struct {
	Rule    string `json:"rule"`
	Excerpt string `json:"excerpt"`
}

// Inspector scans tool results for instructions aimed at the model. This
// first inspector is pattern-based: cheap, explainable, and easy to evade;
// the inspect package will strengthen it.
type Inspector struct {
	rules []rule
}

type rule struct {
	name string
	re   *regexp.Regexp
}

// NewInspector returns the inspector with the built-in rules.
func NewInspector() *Inspector {
	mk := func(name, expr string) rule { return rule{name, regexp.MustCompile(`(?i)` + expr)} }
	return &Inspector{rules: []rule{
		mk("ignore_instructions", `\b(ignore|disregard|forget|override)\b[^.\n]{0,40}\b(previous|prior|above|earlier|all|your|system)\b[^.\n]{0,20}\b(instructions?|prompts?|rules|directions|guidelines)\b`),
		mk("role_override", `\b(you are now|from now on,? you|act as (an?|the) (unrestricted|jailbroken|different)|new instructions\s*:|developer mode)\b`),
		mk("system_prompt", `(\bsystem prompt\b|<\|?im_start\|?>|<\|system\|>|\[/?INST\]|<\s*/?\s*system\s*>|^\s*system\s*:)`),
		mk("conceal", `\b(do not|don't|never) (tell|inform|mention|reveal|show)\b[^.\n]{0,30}\b(the )?(user|human|anyone)\b`),
		mk("exfiltrate", `\b(send|post|upload|forward|email|transmit|exfiltrate)\b[^.\n]{0,60}\b(to|at)\b[^.\n]{0,20}(https?://|\b[\w.+-]+@[\w-]+\.[\w.]+)`),
		mk("tool_directive", `\b(call|invoke|run|use|execute) the\b[^.\n]{0,30}\btool\b[^.\n]{0,40}\b(now|immediately|without asking|silently)\b`),
	}}
}

// Scan returns the findings in text, at most one per rule.
func (in *Inspector) Scan(text string) []Finding {
	var out []Finding
	for _, r := range in.rules {
		loc := r.re.FindStringIndex(text)
		if loc == nil {
			continue
		}
		out = append(out, Finding{Rule: r.name, Excerpt: excerpt(text, loc[0], loc[1])})
	}
	return out
}

func excerpt(s string, from, to int) string {
	const max = 120
	if to-from > max {
		to = from + max
	}
	for to < len(s) && !isRuneStart(s[to]) {
		to++
	}
	return strings.TrimSpace(s[from:to])
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }
