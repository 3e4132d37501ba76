/* SPDX-License-Identifier: MIT */
/* End-to-end benchmark, "C AF_XDP" row: the steering program of bench/e2e/xskfwd.c, attached to both of the
 * load balancer's interfaces. It sends IPv4 TCP and UDP for the service address (VIP, the client side) and the
 * backend's replies to the load balancer's own address (BACKEND -> LB_ADDR, the backend side) to the AF_XDP
 * socket of the receiving queue, and passes everything else (ARP, ICMP) to the kernel. Addresses are given at
 * compile time, in network order: -DVIP=... -DLB_ADDR=... -DBACKEND=...; -DFRAGS makes it a multi-buffer program
 * (xskfwd --frags). */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

#ifdef FRAGS
SEC("xdp.frags") /* may see frames of several buffers; reads only the first, which holds the headers */
#else
SEC("xdp")
#endif
int zonlb_bench_xskfwd(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);

	if ((void *)(ip + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP) ||
	    (ip->protocol != IPPROTO_UDP && ip->protocol != IPPROTO_TCP))
		return XDP_PASS;
	if (ip->daddr != VIP && !(ip->daddr == LB_ADDR && ip->saddr == BACKEND))
		return XDP_PASS;
	return bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);
}

char _license[] SEC("license") = "Dual MIT/GPL";
