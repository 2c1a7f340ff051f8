// Package rules evaluates the built-in critical-event rules on every
// activity the aggregator receives. A hit becomes a BM_INVOKE activity
// whose target is the rule; the aggregator keeps the matching activity in
// full, marks the statistics window and the bundle critical, and forces
// the bundle to disk at once. RULES.md documents each rule; a test keeps
// it in step with the code.
package rules
