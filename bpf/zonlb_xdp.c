/* SPDX-License-Identifier: MIT */
/* zonlb_xdp: steer service and NAT-reply frames into AF_XDP sockets; pass everything else. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <linux/icmp.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "zonlb_abi.h"

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, ZONLB_MAX_XSKS);
	__type(key, __u32);
	__type(value, __u32);
} xsks_map SEC(".maps");

/* ingress ifindex -> first XSKMAP slot of that interface */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32);
} if_slots SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct zonlb_service_key);
	__type(value, __u8);
} services SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct zonlb_nat_key);
	__type(value, struct zonlb_nat_range);
} nat_addrs SEC(".maps");

/* owner[0]: PID of the zonlb-afxdp process that attached this program, so that a later run can tell a
 * live instance from one left behind by a killed process. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} owner SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, ZONLB_XDP_COUNTERS);
	__type(key, __u32);
	__type(value, __u64);
} xdp_stats SEC(".maps");

static __always_inline void count(__u32 slot)
{
	__u64 *v = bpf_map_lookup_elem(&xdp_stats, &slot);
	if (v)
		*v += 1;
}

static __always_inline int pass(void)
{
	count(ZONLB_XDP_PASSED);
	return XDP_PASS;
}

SEC("xdp")
int zonlb_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip;
	__u16 dport = 0, icmp_id = 0;
	__u8 icmp_type = 0;

	count(ZONLB_XDP_SEEN);
	if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return pass();
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end || ip->ihl < 5)
		return pass();
	/* Non-first fragments carry no ports: left to the kernel until fragments are handled. */
	if (ip->frag_off & bpf_htons(0x1FFF))
		return pass();

	void *l4 = (void *)ip + ip->ihl * 4;
	switch (ip->protocol) {
	case IPPROTO_TCP: {
		struct tcphdr *th = l4;
		if ((void *)(th + 1) > data_end)
			return pass();
		dport = th->dest;
		break;
	}
	case IPPROTO_UDP: {
		struct udphdr *uh = l4;
		if ((void *)(uh + 1) > data_end)
			return pass();
		dport = uh->dest;
		break;
	}
	case IPPROTO_ICMP: {
		struct icmphdr *ih = l4;
		if ((void *)(ih + 1) > data_end)
			return pass();
		icmp_type = ih->type;
		icmp_id = ih->un.echo.id;
		if (icmp_type != ICMP_ECHO && icmp_type != ICMP_ECHOREPLY)
			return pass();
		break;
	}
	default:
		return pass();
	}

	int steer = 0;
	if (ip->protocol != IPPROTO_ICMP || icmp_type == ICMP_ECHO) {
		struct zonlb_service_key sk = {
			.addr = ip->daddr,
			.port = ip->protocol == IPPROTO_ICMP ? 0 : dport,
			.proto = ip->protocol,
		};
		if (bpf_map_lookup_elem(&services, &sk))
			steer = 1;
	}
	if (!steer && (ip->protocol != IPPROTO_ICMP || icmp_type == ICMP_ECHOREPLY)) {
		struct zonlb_nat_key nk = { .addr = ip->daddr, .proto = ip->protocol };
		struct zonlb_nat_range *r = bpf_map_lookup_elem(&nat_addrs, &nk);
		if (r) {
			__u16 p = bpf_ntohs(ip->protocol == IPPROTO_ICMP ? icmp_id : dport);
			if (p >= r->port_min && p <= r->port_max)
				steer = 1;
		}
	}
	if (!steer)
		return pass();

	__u32 ifindex = ctx->ingress_ifindex;
	__u32 *base = bpf_map_lookup_elem(&if_slots, &ifindex);
	if (!base)
		return pass();
	__u32 slot = *base + ctx->rx_queue_index;
	if (slot >= ZONLB_MAX_XSKS) {
		/* never taken in practice; referencing owner here makes it one of the program's maps, so a
		 * later run can find the owner PID from the attached program's id */
		__u32 zero = 0;
		bpf_map_lookup_elem(&owner, &zero);
		return pass();
	}
	int action = bpf_redirect_map(&xsks_map, slot, XDP_PASS);
	count(action == XDP_REDIRECT ? ZONLB_XDP_REDIRECTED : ZONLB_XDP_NO_SOCKET);
	return action;
}

char _license[] SEC("license") = "Dual MIT/GPL";
