// Package mapper turns kernel events, with what the process table knows,
// into ActEvents. The mapping from kernel event to XDR event type, access
// type and target kind lives in one table (Rules), documented in
// MAPPING.md; a test keeps the two in step.
package mapper
