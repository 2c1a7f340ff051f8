// recvfloor: the least a proc connector reader can do, for
// BenchmarkReceiveExecStorm/c. It subscribes, prints "ready", counts the
// datagrams it receives until SIGTERM, then prints the count and its own
// CPU time in microseconds.
#include <linux/cn_proc.h>
#include <linux/connector.h>
#include <linux/netlink.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

static volatile sig_atomic_t stop;

static void on_term(int sig) { (void)sig; stop = 1; }

int main(void) {
	struct sigaction sa = {.sa_handler = on_term}; // no SA_RESTART: recv returns
	sigaction(SIGTERM, &sa, NULL);

	int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_CONNECTOR);
	struct sockaddr_nl addr = {.nl_family = AF_NETLINK, .nl_groups = CN_IDX_PROC};
	int size = 8 << 20;
	if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) < 0) {
		perror("recvfloor: socket");
		return 1;
	}
	char req[NLMSG_SPACE(sizeof(struct cn_msg) + sizeof(int))];
	memset(req, 0, sizeof req);
	struct nlmsghdr *nh = (struct nlmsghdr *)req;
	nh->nlmsg_len = sizeof req;
	nh->nlmsg_type = NLMSG_DONE;
	struct cn_msg *cn = NLMSG_DATA(nh);
	cn->id.idx = CN_IDX_PROC;
	cn->id.val = CN_VAL_PROC;
	cn->len = sizeof(int);
	int op = PROC_CN_MCAST_LISTEN;
	memcpy(cn->data, &op, sizeof op);
	if (send(fd, req, sizeof req, 0) < 0) {
		perror("recvfloor: subscribe");
		return 1;
	}
	printf("ready\n");
	fflush(stdout);

	char buf[8192];
	long datagrams = 0;
	while (!stop) {
		if (recv(fd, buf, sizeof buf, 0) > 0)
			datagrams++;
	}
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	printf("%ld %ld\n", datagrams,
	       (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000L + ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
	return 0;
}
