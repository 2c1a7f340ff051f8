// Package accounts finds which accounts changed in the account files
// /etc/passwd, /etc/shadow and /etc/group: a Watcher keeps a parsed
// snapshot of each file and, asked to (after a write to or a rename onto
// the file, or when a poll sees the file changed), compares the file's
// contents with it entry by entry and reports each user or group added,
// deleted or modified, with the fields that changed.
//
// Passwords are never kept nor reported: a snapshot holds a keyed
// fingerprint of each password field, enough to tell that it changed (and
// whether it is empty). Memory is bounded by Options.MaxFileSize and
// Options.MaxEntries; a file being rewritten in place is recognised by
// contents that do not end in a newline, and compared once it is whole.
package accounts
