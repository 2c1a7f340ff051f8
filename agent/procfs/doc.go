// Package procfs reads the process information the agent needs from /proc:
// stat, status, command line, environment, executable, working directory,
// cgroup, plus the boot id and boot time.
//
// It runs once per process event, so it is built for exec storms: every file
// is read with a size cap into a small stack buffer, parsing is done by hand
// over bytes, and the only allocations are the strings handed back.
//
// FS takes a root directory (normally /proc) so tests can run on fixture
// trees under testdata/. Every per-process method reports a process that no
// longer exists with an error for which errors.Is(err, ErrGone) holds.
package procfs
