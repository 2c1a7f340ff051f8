// Package deploy holds what installs the XDR sensor on a device: the
// systemd units of xdr-agent and xdr-aggregator, install.sh, the
// sysusers.d and tmpfiles.d entries and the reference configuration
// (see README.md). It has no Go code of its own; its tests run
// install.sh into temporary prefixes, check the tree it leaves and
// verify the units.
package deploy
