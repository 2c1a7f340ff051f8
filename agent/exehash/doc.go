// Package exehash computes the MD5, SHA-1 and SHA-256 digests and the byte
// entropy of executables, once per file identity: a Cache keys results by
// device, inode, size and modification and change times, so a binary
// executed a thousand times is read once, and a binary modified in place is
// read again.
package exehash
