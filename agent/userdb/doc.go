// Package userdb resolves user and group ids to names from /etc/passwd and
// /etc/group, the way the agent enriches events with owner and group names.
//
// A DB keeps both files parsed in memory for cheap lookups on the event path
// and re-reads a file only when its identity (inode, size, modification and
// change time) changed, checked at most once per interval. ParsePasswd and
// ParseGroup, and Entries and ParseID that they are built on, are exported
// for code that compares account files (agent/accounts).
package userdb
