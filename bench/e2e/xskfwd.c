// SPDX-License-Identifier: MIT
/* End-to-end benchmark, "C AF_XDP" row: a minimal single-threaded AF_XDP forwarder in C doing the same full NAT as
 * zonlb-afxdp's bench services, with everything else stripped: no connection table, no backend choice, no route
 * lookup, addresses and MACs given on the command line. It answers one question: on this machine, in this
 * topology, what does the kernel's copy-mode AF_XDP path leave for a userspace forwarder, and how close to it
 * does the engine get?
 *
 * Same ring handling as the engine's worker: one UMEM shared by both interfaces' sockets (queue 0 each, copy
 * mode, need_wakeup), RX batches of 64, the TX ring kicked again while copy mode takes 32 frames per sendto(),
 * completions recycled into the fill rings, poll() when a round found nothing.
 *
 * Per frame: client side (to VIP) -> destination BACKEND, source LB_ADDR, out of the backend side; backend side
 * (BACKEND -> LB_ADDR) -> source VIP, destination CLIENT, out of the client side. Ports are kept. TTL - 1, the
 * IPv4 header checksum recomputed, the TCP/UDP checksum updated for the two addresses, or computed in full when
 * the sender left it partial (CHECKSUM_PARTIAL over veth: the field holds the pseudo-header sum), as the engine
 * does.
 *
 * Usage: xskfwd PROG.o CLIENT_IF BACKEND_IF VIP CLIENT LB_ADDR BACKEND CLIENT_MAC BACKEND_MAC
 * (PROG.o: xskfwd.bpf.c compiled with the same addresses; attached to both interfaces here, detached on exit.)
 * Stops on SIGTERM or SIGINT and prints its counters. */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_link.h>
#include <linux/if_xdp.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <xdp/xsk.h>

#define FRAMES 16384 /* the engine's defaults: frame_count, frame_size, ring_size, batch */
#define FRAME_SIZE 2048
#define RING 2048
#define BATCH 64
#define MAX_KICKS 8

struct port {
	const char *name;
	int ifindex;
	struct bpf_object *obj;
	struct xsk_socket *xsk;
	struct xsk_ring_cons rx, comp;
	struct xsk_ring_prod tx, fill;
	unsigned pending;      /* TX descriptors written, not yet submitted */
	unsigned long inflight; /* submitted, not yet completed */
	uint8_t src_mac[6], dst_mac[6]; /* for frames sent out of this port */
};

static struct port ports[2];
static uint8_t *area;
static uint64_t free_addrs[FRAMES];
static unsigned nfree;
static uint32_t vip, client, lb_addr, backend; /* network order */
static unsigned long rx_frames, tx_frames, dropped, kicks;
static volatile sig_atomic_t stopping;

static void on_signal(int sig) { (void)sig; stopping = 1; }

static void die(const char *what, int err)
{
	fprintf(stderr, "xskfwd: %s: %s\n", what, strerror(err < 0 ? -err : err));
	exit(1);
}

static void parse_mac(const char *s, uint8_t mac[6])
{
	if (sscanf(s, "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &mac[0], &mac[1], &mac[2], &mac[3], &mac[4], &mac[5]) != 6) {
		fprintf(stderr, "xskfwd: not a MAC address: %s\n", s);
		exit(2);
	}
}

static uint32_t parse_ip(const char *s)
{
	struct in_addr a;
	if (inet_pton(AF_INET, s, &a) != 1) {
		fprintf(stderr, "xskfwd: not an IPv4 address: %s\n", s);
		exit(2);
	}
	return a.s_addr;
}

static uint16_t fold(uint64_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xFFFF) + (sum >> 16);
	return (uint16_t)sum;
}

static uint64_t sum_bytes(const uint8_t *p, size_t n)
{
	uint64_t sum = 0;
	for (; n >= 2; p += 2, n -= 2)
		sum += (uint32_t)(p[0] << 8 | p[1]);
	if (n)
		sum += (uint32_t)p[0] << 8;
	return sum;
}

static uint64_t sum_addrs(uint32_t a, uint32_t b)
{
	return sum_bytes((const uint8_t *)&a, 4) + sum_bytes((const uint8_t *)&b, 4);
}

/* Rewrites one frame in place; returns the port to send it from, or -1 to drop it. */
static int nat(int in, uint8_t *f, uint32_t len)
{
	if (len < 14 + 20 || f[12] != 0x08 || f[13] != 0x00)
		return -1;
	uint8_t *ip = f + 14;
	unsigned ihl = (ip[0] & 0x0F) * 4u, total = (unsigned)(ip[2] << 8 | ip[3]);
	if ((ip[0] >> 4) != 4 || ihl < 20 || total < ihl || 14 + total > len || ip[8] <= 1)
		return -1;
	uint8_t proto = ip[9];
	unsigned csum_at = proto == 6 ? 16 : proto == 17 ? 6 : 0;
	if (!csum_at || total < ihl + csum_at + 2)
		return -1;
	uint32_t osrc, odst, nsrc, ndst;
	memcpy(&osrc, ip + 12, 4);
	memcpy(&odst, ip + 16, 4);
	int out;
	if (in == 0 && odst == vip) {
		nsrc = lb_addr; ndst = backend; out = 1;
	} else if (in == 1 && osrc == backend && odst == lb_addr) {
		nsrc = vip; ndst = client; out = 0;
	} else {
		return -1;
	}
	uint8_t *l4 = ip + ihl;
	unsigned l4len = total - ihl;
	uint16_t field = (uint16_t)(l4[csum_at] << 8 | l4[csum_at + 1]);
	uint64_t pseudo_rest = proto + l4len;
	if (field == fold(sum_addrs(osrc, odst) + pseudo_rest)) {
		/* partial: the sender's stack left the pseudo-header sum for the device to complete */
		l4[csum_at] = l4[csum_at + 1] = 0;
		field = (uint16_t)~fold(sum_addrs(nsrc, ndst) + pseudo_rest + sum_bytes(l4, l4len));
		if (proto == 17 && field == 0)
			field = 0xFFFF;
	} else if (proto == 6 || field != 0) {
		/* RFC 1624: HC' = ~(~HC + ~m + m') over the four address words */
		uint64_t s = (uint16_t)~field;
		s += 4 * 0xFFFFull - sum_addrs(osrc, odst) + sum_addrs(nsrc, ndst);
		field = (uint16_t)~fold(s);
		if (proto == 17 && field == 0)
			field = 0xFFFF;
	}
	l4[csum_at] = (uint8_t)(field >> 8);
	l4[csum_at + 1] = (uint8_t)field;
	memcpy(ip + 12, &nsrc, 4);
	memcpy(ip + 16, &ndst, 4);
	ip[8]--;
	ip[10] = ip[11] = 0;
	uint16_t hc = (uint16_t)~fold(sum_bytes(ip, ihl));
	ip[10] = (uint8_t)(hc >> 8);
	ip[11] = (uint8_t)hc;
	memcpy(f, ports[out].dst_mac, 6);
	memcpy(f + 6, ports[out].src_mac, 6);
	return out;
}

static void reap(struct port *p)
{
	uint32_t idx, n = xsk_ring_cons__peek(&p->comp, RING, &idx);
	for (uint32_t i = 0; i < n; i++)
		free_addrs[nfree++] = *xsk_ring_cons__comp_addr(&p->comp, idx + i);
	xsk_ring_cons__release(&p->comp, n);
	p->inflight -= n;
}

static void refill(struct port *p)
{
	uint32_t idx, want = xsk_prod_nb_free(&p->fill, RING);
	if (want > nfree)
		want = nfree;
	if (want == 0 || xsk_ring_prod__reserve(&p->fill, want, &idx) != want)
		return;
	for (uint32_t i = 0; i < want; i++)
		*xsk_ring_prod__fill_addr(&p->fill, idx + i) = free_addrs[--nfree];
	xsk_ring_prod__submit(&p->fill, want);
	if (xsk_ring_prod__needs_wakeup(&p->fill))
		recvfrom(xsk_socket__fd(p->xsk), NULL, 0, MSG_DONTWAIT, NULL, NULL);
}

static unsigned receive(int in)
{
	struct port *p = &ports[in];
	uint32_t idx, n = xsk_ring_cons__peek(&p->rx, BATCH, &idx);
	for (uint32_t i = 0; i < n; i++) {
		const struct xdp_desc *d = xsk_ring_cons__rx_desc(&p->rx, idx + i);
		int out = nat(in, xsk_umem__get_data(area, d->addr), d->len);
		uint32_t t;
		if (out < 0 || xsk_ring_prod__reserve(&ports[out].tx, 1, &t) != 1) {
			free_addrs[nfree++] = d->addr;
			dropped++;
			continue;
		}
		struct xdp_desc *o = xsk_ring_prod__tx_desc(&ports[out].tx, t);
		o->addr = d->addr;
		o->len = d->len;
		o->options = 0;
		ports[out].pending++;
	}
	xsk_ring_cons__release(&p->rx, n);
	rx_frames += n;
	return n;
}

/* the TX ring's descriptors the kernel has not taken yet */
static uint32_t untaken(struct port *p)
{
	return *p->tx.producer - __atomic_load_n(p->tx.consumer, __ATOMIC_ACQUIRE);
}

static void flush(struct port *p)
{
	if (p->pending) {
		xsk_ring_prod__submit(&p->tx, p->pending);
		p->inflight += p->pending;
		tx_frames += p->pending;
		p->pending = 0;
	}
	for (int k = 0; k < MAX_KICKS && untaken(p) > 0; k++) {
		uint32_t before = untaken(p);
		sendto(xsk_socket__fd(p->xsk), NULL, 0, MSG_DONTWAIT, NULL, 0);
		kicks++;
		if (untaken(p) == before)
			break;
	}
}

static void attach(struct port *p, const char *prog_path)
{
	p->obj = bpf_object__open_file(prog_path, NULL);
	int err = libbpf_get_error(p->obj);
	if (err)
		die(prog_path, err);
	if ((err = bpf_object__load(p->obj)))
		die("loading the XDP program", err);
	struct bpf_program *prog = bpf_object__find_program_by_name(p->obj, "zonlb_bench_xskfwd");
	int map = bpf_object__find_map_fd_by_name(p->obj, "xsks");
	if (!prog || map < 0)
		die("the XDP program lacks zonlb_bench_xskfwd or its xsks map", ENOENT);
	if ((err = xsk_socket__update_xskmap(p->xsk, map)))
		die("adding the socket to the xsks map", err);
	if ((err = bpf_xdp_attach(p->ifindex, bpf_program__fd(prog), XDP_FLAGS_DRV_MODE, NULL)))
		die(p->name, err);
}

int main(int argc, char **argv)
{
	if (argc != 10) {
		fprintf(stderr, "usage: xskfwd PROG.o CLIENT_IF BACKEND_IF VIP CLIENT LB_ADDR BACKEND CLIENT_MAC BACKEND_MAC\n");
		return 2;
	}
	ports[0].name = argv[2];
	ports[1].name = argv[3];
	vip = parse_ip(argv[4]);
	client = parse_ip(argv[5]);
	lb_addr = parse_ip(argv[6]);
	backend = parse_ip(argv[7]);
	parse_mac(argv[8], ports[0].dst_mac);
	parse_mac(argv[9], ports[1].dst_mac);
	for (int i = 0; i < 2; i++) {
		if (!(ports[i].ifindex = (int)if_nametoindex(ports[i].name)))
			die(ports[i].name, errno);
		char path[64];
		snprintf(path, sizeof path, "/sys/class/net/%s/address", ports[i].name);
		FILE *f = fopen(path, "r");
		char mac[32] = "";
		if (!f || !fgets(mac, sizeof mac, f))
			die(path, errno);
		fclose(f);
		parse_mac(mac, ports[i].src_mac);
	}

	size_t bytes = (size_t)FRAMES * FRAME_SIZE;
	area = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (area == MAP_FAILED)
		die("mmap of the UMEM", errno);
	struct xsk_umem *umem;
	struct xsk_umem_config ucfg = { .fill_size = RING, .comp_size = RING, .frame_size = FRAME_SIZE };
	int err = xsk_umem__create(&umem, area, bytes, &ports[0].fill, &ports[0].comp, &ucfg);
	if (err)
		die("xsk_umem__create", err);
	struct xsk_socket_config cfg = {
		.rx_size = RING, .tx_size = RING,
		.libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD,
		.bind_flags = XDP_COPY | XDP_USE_NEED_WAKEUP,
	};
	/* EBUSY: the previous row's socket on this queue is still being released (the kernel frees it after
	 * close() returns); try again for up to 2 s */
	for (int tries = 0;; tries++) {
		err = xsk_socket__create(&ports[0].xsk, ports[0].name, 0, umem, &ports[0].rx, &ports[0].tx, &cfg);
		if (err != -EBUSY || tries == 20)
			break;
		usleep(100 * 1000);
	}
	if (err)
		die(ports[0].name, err);
	for (int tries = 0;; tries++) {
		err = xsk_socket__create_shared(&ports[1].xsk, ports[1].name, 0, umem, &ports[1].rx, &ports[1].tx,
						&ports[1].fill, &ports[1].comp, &cfg);
		if (err != -EBUSY || tries == 20)
			break;
		usleep(100 * 1000);
	}
	if (err)
		die(ports[1].name, err);
	for (uint64_t i = 0; i < FRAMES; i++)
		free_addrs[nfree++] = i * FRAME_SIZE;
	for (int i = 0; i < 2; i++)
		refill(&ports[i]);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	for (int i = 0; i < 2; i++)
		attach(&ports[i], argv[1]);
	fprintf(stderr, "xskfwd: forwarding %s <-> %s\n", ports[0].name, ports[1].name);

	struct pollfd fds[2] = {
		{ .fd = xsk_socket__fd(ports[0].xsk), .events = POLLIN },
		{ .fd = xsk_socket__fd(ports[1].xsk), .events = POLLIN },
	};
	while (!stopping) {
		unsigned work = 0;
		for (int i = 0; i < 2; i++) {
			reap(&ports[i]);
			work += receive(i);
			refill(&ports[i]);
		}
		for (int i = 0; i < 2; i++)
			flush(&ports[i]);
		if (work == 0)
			poll(fds, 2, ports[0].inflight || ports[1].inflight ? 1 : 50);
	}

	for (int i = 0; i < 2; i++) {
		bpf_xdp_detach(ports[i].ifindex, XDP_FLAGS_DRV_MODE, NULL);
		xsk_socket__delete(ports[i].xsk);
		bpf_object__close(ports[i].obj);
	}
	xsk_umem__delete(umem);
	fprintf(stderr, "xskfwd: %lu received, %lu sent, %lu dropped, %lu kicks\n", rx_frames, tx_frames, dropped, kicks);
	return 0;
}
