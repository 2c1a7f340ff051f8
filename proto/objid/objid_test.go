package objid

import (
	"testing"

	xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"
)

func execEvent(pid uint32, exe, file string) *xdrv1.ActEvent {
	return &xdrv1.ActEvent{
		AccessType: xdrv1.XdrAccessType_XDR_ACCESS_TYPE_PROCESS_EXECUTE,
		Subject:    &xdrv1.Process{Pid: pid, Tgid: pid, Exe: exe, InstanceId: uint64(pid) * 7},
		Target:     &xdrv1.ActEvent_File{File: &xdrv1.File{Path: file}},
	}
}

func connEvent(remotePort, localPort uint32) *xdrv1.ActEvent {
	return &xdrv1.ActEvent{
		AccessType: xdrv1.XdrAccessType_XDR_ACCESS_TYPE_CONNECTION_CONNECT_OUTBOUND,
		Subject:    &xdrv1.Process{Exe: "/usr/bin/curl"},
		Target: &xdrv1.ActEvent_Connection{Connection: &xdrv1.Connection{
			Protocol: xdrv1.XdrConnectionType_XDR_CONNECTION_TYPE_TCP, Direction: xdrv1.Direction_DIRECTION_OUTBOUND,
			RemoteAddress: "192.0.2.1", RemotePort: remotePort, LocalAddress: "198.51.100.7", LocalPort: localPort,
		}},
	}
}

func TestActivityIdentity(t *testing.T) {
	tests := []struct {
		name  string
		a, b  *xdrv1.ActEvent
		equal bool
	}{
		{"same activity from two pids", execEvent(10, "/bin/sh", "/usr/bin/id"), execEvent(99, "/bin/sh", "/usr/bin/id"), true},
		{"path normalised", execEvent(10, "/bin/sh", "/usr/bin/id"), execEvent(10, "/bin/sh", "/usr//bin/./id"), true},
		{"different file", execEvent(10, "/bin/sh", "/usr/bin/id"), execEvent(10, "/bin/sh", "/usr/bin/ls"), false},
		{"different subject", execEvent(10, "/bin/sh", "/usr/bin/id"), execEvent(10, "/bin/bash", "/usr/bin/id"), false},
		{"ephemeral local port ignored", connEvent(443, 40000), connEvent(443, 50000), true},
		{"different remote port", connEvent(443, 40000), connEvent(80, 40000), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Activity(tt.a) == Activity(tt.b); got != tt.equal {
				t.Errorf("Activity equal = %v, want %v", got, tt.equal)
			}
		})
	}
}

// The ids are persisted in bundles and compared across devices: pin a few
// so an accidental change of the encoding fails here. The expected values
// were computed independently (Python: FNV-1a 64 over tag byte, then each
// string as little-endian u64 length + bytes).
func TestStableValues(t *testing.T) {
	tests := []struct {
		name string
		got  uint64
		want uint64
	}{
		{"file", File("/etc/passwd"), 0x0b369fbabada16ca},
		{"process", Process("/usr/bin/id", "id"), 0xe7f96569c0fc0c29},
		{"dns", DNS("Example.COM.", 1), DNS("example.com", 1)},
		{"kernel thread", Process("", "kworker/0:1"), 0xf49e9a95b89bda52},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %#x, want %#x", tt.name, tt.got, tt.want)
		}
	}
	if Process("", "x") == Process("x", "") {
		t.Error("comm fallback collides with exe identity")
	}
}
