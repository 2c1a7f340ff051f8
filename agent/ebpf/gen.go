package ebpf

// The BPF objects are generated from collector.c and probe.c with clang and
// committed, so building the agent needs no C toolchain. Regenerate with
// `go generate ./agent/ebpf` (needs clang-19; bpf/vmlinux.h is generated
// too, see bpf/README.md).

//go:generate go tool bpf2go -cc clang-19 -cflags "-O2 -g -Wall -Werror" -target bpfel -type xdr_header -type xdr_file -type xdr_exec -type xdr_argv -type xdr_fork -type xdr_exit -type xdr_creds -type xdr_setid -type xdr_ptrace -type xdr_proc_access -type xdr_comm -type xdr_fileop -type xdr_memop -type xdr_netop -type xdr_kind -type xdr_op -type xdr_flag -type xdr_drop -type xdr_repeat collector collector.c -- -I./bpf
//go:generate go tool bpf2go -cc clang-19 -cflags "-O2 -g -Wall -Werror" -target bpfel probe probe.c -- -I./bpf
