/* SPDX-License-Identifier: MIT */
/* End-to-end benchmark, "XDP redirect" row: attached to the load balancer's client-side interface, sends UDP
 * frames to port BENCH_PORT straight out of the backend-side interface (OUT_IFINDEX) with the MACs rewritten
 * (OUT_SRC_MAC, OUT_DST_MAC) and the TTL decremented: the in-kernel ceiling of forwarding over veth. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#ifndef BENCH_PORT
#define BENCH_PORT 9
#endif

SEC("xdp")
int zonlb_bench_redirect(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct udphdr *udp = (void *)(ip + 1);
	const unsigned char src[6] = { OUT_SRC_MAC }, dst[6] = { OUT_DST_MAC };

	if ((void *)(udp + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP) || ip->protocol != IPPROTO_UDP ||
	    ip->ihl != 5 || udp->dest != bpf_htons(BENCH_PORT) || ip->ttl <= 1)
		return XDP_PASS;
	__builtin_memcpy(eth->h_dest, dst, 6);
	__builtin_memcpy(eth->h_source, src, 6);
	/* TTL - 1, with the IPv4 header checksum updated (RFC 1624) */
	__u32 check = ip->check;
	check += bpf_htons(0x0100);
	ip->check = (__u16)(check + (check >= 0xFFFF));
	ip->ttl--;
	return bpf_redirect(OUT_IFINDEX, 0);
}

char _license[] SEC("license") = "Dual MIT/GPL";
