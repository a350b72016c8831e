// Package layout holds no code, only the tests that keep the repository's
// shape: every package has a doc comment, and dependencies point inwards as
// DESIGN.md says (policy never imports the gateways, the model gateway never
// imports the action gateway, identity never imports the server).
package layout
