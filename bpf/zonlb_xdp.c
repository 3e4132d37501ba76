/* SPDX-License-Identifier: MIT */
/* zonlb_xdp: steer service and NAT-reply frames into AF_XDP sockets; pass everything else. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/in.h>
#include <linux/in6.h>
#include "zonlb_icmp.h"
#include <linux/icmpv6.h>
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

/* ingress ifindex -> the interface's XSKMAP slots (first, count) */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, struct zonlb_if_slots);
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

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct zonlb_frag_key);
	__type(value, __u8);
} frag_flows SEC(".maps");

/* owner[0]: the zonlb-afxdp process that attached this program (struct zonlb_owner), so that a later run can tell
 * a live instance from one left behind by a killed process. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct zonlb_owner);
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

/* Where the transport header starts and what it is: IPv4 after its options; IPv6 after the extension
 * headers the engine walks too (hop-by-hop, routing, destination options, authentication, fragment).
 * Returns 0 when the frame is not one the engine serves (the caller passes it). */
static __always_inline int l3_parse(void *data, void *data_end, __u8 addr[16], __u8 *proto, void **l4, int *later_fragment,
				    struct zonlb_frag_key *frag, int *first_fragment)
{
	struct ethhdr *eth = data;
	__u16 h_proto;
	void *l3 = eth + 1;

	if (l3 > data_end)
		return 0;
	h_proto = eth->h_proto;
	if (h_proto == bpf_htons(ETH_P_8021Q)) {
		struct vlan { __be16 tci; __be16 proto; } *tag = l3;
		if ((void *)(tag + 1) > data_end)
			return 0;
		h_proto = tag->proto;
		l3 = tag + 1;
	}
	if (h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = l3;
		if ((void *)(ip + 1) > data_end || ip->ihl < 5)
			return 0;
		/* fragments after the first carry no ports: the caller steers them if it steered their first */
		*later_fragment = (ip->frag_off & bpf_htons(0x1FFF)) != 0;
		*first_fragment = !*later_fragment && (ip->frag_off & bpf_htons(0x2000));
		__builtin_memset(addr, 0, 10);
		addr[10] = 0xff;
		addr[11] = 0xff;
		__builtin_memcpy(addr + 12, &ip->daddr, 4);
		if (*later_fragment || *first_fragment) {
			__builtin_memset(frag->saddr, 0, 10);
			frag->saddr[10] = 0xff;
			frag->saddr[11] = 0xff;
			__builtin_memcpy(frag->saddr + 12, &ip->saddr, 4);
			__builtin_memcpy(frag->daddr, addr, 16);
			frag->id = ip->id;
			frag->proto = ip->protocol;
		}
		*proto = ip->protocol;
		*l4 = (void *)ip + ip->ihl * 4;
		return 1;
	}
	if (h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = l3;
		if ((void *)(ip6 + 1) > data_end)
			return 0;
		__builtin_memcpy(addr, &ip6->daddr, 16);
		__u8 next = ip6->nexthdr;
		void *p = ip6 + 1;
#pragma unroll
		for (int i = 0; i < 8; i++) {
			if (next != IPPROTO_HOPOPTS && next != IPPROTO_ROUTING && next != IPPROTO_DSTOPTS &&
			    next != IPPROTO_FRAGMENT && next != IPPROTO_AH)
				break;
			__u8 *h = p;
			if ((void *)(h + 8) > data_end)
				return 0;
			int len;
			if (next == IPPROTO_FRAGMENT) {
				__builtin_memcpy(frag->saddr, &ip6->saddr, 16);
				__builtin_memcpy(frag->daddr, addr, 16);
				__builtin_memcpy(&frag->id, h + 4, 4);
				frag->proto = h[0];
				/* offset non-zero: a later fragment, whose payload is no header */
				if ((h[2] << 8 | h[3]) & 0xFFF8) {
					*later_fragment = 1;
					*proto = h[0];
					*l4 = p + 8;
					return 1;
				}
				*first_fragment = (h[3] & 1) != 0; /* M: more fragments follow */
				len = 8;
			} else if (next == IPPROTO_AH) {
				len = (h[1] + 2) * 4;
			} else {
				len = (h[1] + 1) * 8;
			}
			next = h[0];
			p += len;
		}
		*proto = next;
		*l4 = p;
		return 1;
	}
	return 0;
}

/* An ICMP/ICMPv6 error quotes a packet we sent: from a VIP:port toward a client, or from SNAT:nat port toward
 * a backend. Returns 1 when it does (the error belongs to one of our connections). The quoted IPv6 header is
 * taken without extension headers. */
static __always_inline int quotes_ours(void *quote, void *data_end, int v6)
{
	__u8 addr[16];
	__u8 proto;
	void *l4;

	if (v6) {
		struct ipv6hdr *ip6 = quote;
		if ((void *)(ip6 + 1) > data_end)
			return 0;
		__builtin_memcpy(addr, &ip6->saddr, 16);
		proto = ip6->nexthdr;
		l4 = ip6 + 1;
	} else {
		struct iphdr *ip = quote;
		if ((void *)(ip + 1) > data_end || ip->ihl < 5)
			return 0;
		__builtin_memset(addr, 0, 10);
		addr[10] = 0xff;
		addr[11] = 0xff;
		__builtin_memcpy(addr + 12, &ip->saddr, 4);
		proto = ip->protocol;
		l4 = (void *)ip + ip->ihl * 4;
	}
	__u8 *h = l4;
	if ((void *)(h + 8) > data_end)
		return 0;
	__u16 sport; /* network order: TCP/UDP source port, or the echo identifier */
	int icmp = proto == IPPROTO_ICMP || proto == IPPROTO_ICMPV6;
	if (icmp)
		__builtin_memcpy(&sport, h + 4, 2);
	else if (proto == IPPROTO_TCP || proto == IPPROTO_UDP)
		__builtin_memcpy(&sport, h, 2);
	else
		return 0;

	struct zonlb_service_key sk = { .port = icmp ? 0 : sport, .proto = proto };
	__builtin_memcpy(sk.addr, addr, 16);
	if (bpf_map_lookup_elem(&services, &sk))
		return 1;
	struct zonlb_nat_key nk = { .proto = proto };
	__builtin_memcpy(nk.addr, addr, 16);
	struct zonlb_nat_range *r = bpf_map_lookup_elem(&nat_addrs, &nk);
	if (r) {
		__u16 p = bpf_ntohs(sport);
		if (p >= r->port_min && p <= r->port_max)
			return 1;
	}
	return 0;
}

SEC("xdp")
int zonlb_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	void *l4;
	__u8 daddr[16], proto;
	__u16 dport = 0, icmp_id = 0;
	int echo_request = 0, echo_reply = 0, error_ours = 0, later_fragment = 0, first_fragment = 0;
	struct zonlb_frag_key frag = {};

	count(ZONLB_XDP_SEEN);
	if (!l3_parse(data, data_end, daddr, &proto, &l4, &later_fragment, &frag, &first_fragment))
		return pass();
	if (later_fragment) {
		if (!bpf_map_lookup_elem(&frag_flows, &frag))
			return pass();
		goto redirect;
	}

	switch (proto) {
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
		icmp_id = ih->un.echo.id;
		echo_request = ih->type == ICMP_ECHO;
		echo_reply = ih->type == ICMP_ECHOREPLY;
		if (ih->type == ICMP_DEST_UNREACH || ih->type == ICMP_TIME_EXCEEDED)
			error_ours = quotes_ours(ih + 1, data_end, 0);
		break;
	}
	case IPPROTO_ICMPV6: {
		/* Only echo: neighbour discovery, router and multicast listener messages stay with the kernel. */
		struct icmp6hdr *ih = l4;
		if ((void *)(ih + 1) > data_end)
			return pass();
		icmp_id = ih->icmp6_dataun.u_echo.identifier;
		echo_request = ih->icmp6_type == ICMPV6_ECHO_REQUEST;
		echo_reply = ih->icmp6_type == ICMPV6_ECHO_REPLY;
		if (ih->icmp6_type == ICMPV6_DEST_UNREACH || ih->icmp6_type == ICMPV6_PKT_TOOBIG ||
		    ih->icmp6_type == ICMPV6_TIME_EXCEED)
			error_ours = quotes_ours(ih + 1, data_end, 1);
		break;
	}
	default:
		return pass();
	}
	int icmp = proto == IPPROTO_ICMP || proto == IPPROTO_ICMPV6;
	if (icmp && !echo_request && !echo_reply && !error_ours)
		return pass();

	int steer = error_ours;
	if (!steer && (!icmp || echo_request)) {
		struct zonlb_service_key sk = { .port = icmp ? 0 : dport, .proto = proto };
		__builtin_memcpy(sk.addr, daddr, 16);
		if (bpf_map_lookup_elem(&services, &sk))
			steer = 1;
	}
	if (!steer && (!icmp || echo_reply)) {
		struct zonlb_nat_key nk = { .proto = proto };
		__builtin_memcpy(nk.addr, daddr, 16);
		struct zonlb_nat_range *r = bpf_map_lookup_elem(&nat_addrs, &nk);
		if (r) {
			__u16 p = bpf_ntohs(icmp ? icmp_id : dport);
			if (p >= r->port_min && p <= r->port_max)
				steer = 1;
		}
	}
	if (!steer)
		return pass();
	if (first_fragment) {
		__u8 one = 1;
		bpf_map_update_elem(&frag_flows, &frag, &one, BPF_ANY);
	}

redirect:;
	__u32 ifindex = ctx->ingress_ifindex;
	struct zonlb_if_slots *slots = bpf_map_lookup_elem(&if_slots, &ifindex);
	if (!slots)
		return pass();
	if (ctx->rx_queue_index >= slots->count) {
		/* a queue without a socket (the interface's queue count was raised): the kernel's */
		count(ZONLB_XDP_NO_SOCKET);
		return XDP_PASS;
	}
	__u32 slot = slots->first + ctx->rx_queue_index;
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
