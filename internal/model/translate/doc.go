// Package translate converts between the two client dialects the gateway
// speaks — OpenAI chat completions and Anthropic messages — in both
// directions: requests, non-streamed responses, error bodies, and streams,
// which are translated event by event as an io.Reader without being
// buffered whole. A stream that breaks off upstream ends with an error
// event in the target dialect, never with a clean finish.
//
// What one dialect can say and the other cannot is dropped or refused, never
// invented: a request feature with no counterpart that changes the answer
// (n > 1, audio, documents, images in tool results, server tools) is an
// *Error the caller reports as a 400; decoration with no counterpart
// (cache_control, image detail, logprobs) is dropped.
//
// What does not survive a round trip, precisely (the tests check that
// everything else does):
//
// OpenAI → Anthropic → OpenAI:
//   - "developer" messages come back as "system"; system messages anywhere
//     in the conversation move to the front and several merge into one.
//   - max_tokens comes back as max_completion_tokens; an absent limit comes
//     back as DefaultMaxTokens. temperature above 1 comes back as 1.
//   - stop "x" comes back as ["x"]; a content string and a single text
//     part are interchangeable, and a user message following tool results
//     comes back as parts.
//   - message "name", image "detail", tools' "strict", n = 1, logprobs,
//     response_format, seed, penalties, logit_bias, metadata (stored
//     completions), reasoning_effort and audio output are dropped.
//   - an assistant refusal in the history comes back as content.
//   - responses: only the first choice; refusal becomes text with
//     stop_reason "refusal"; completion_tokens_details, system_fingerprint
//     and created (the translation reports its own time) are lost.
//
// Anthropic → OpenAI → Anthropic:
//   - cache_control, top_k, thinking (request and blocks), citations,
//     tool_result is_error, server tools (refused) and documents (refused)
//     do not survive.
//   - text after a tool_use in one assistant turn moves before it; several
//     text blocks of a response merge into one.
//   - stop_reason "stop_sequence" and "pause_turn" come back as "end_turn"
//     and stop_sequence is lost.
//   - usage: cache_creation_input_tokens fold into input_tokens.
//   - error types follow the HTTP status; the message and status survive.
//   - a stream that ends in an error loses the usage message_start
//     reported: OpenAI streams report usage only at their end.
package translate
