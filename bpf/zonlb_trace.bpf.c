/* SPDX-License-Identifier: GPL-2.0 */
/* zonlb_trace: reports packets the kernel drops (skb:kfree_skb, with its drop reason) whose IPv4 or IPv6 source or
 * destination is one of the addresses we serve (VIPs, SNAT addresses, backends), through a ring buffer. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "zonlb_trace_abi.h"

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD

/* addresses to watch (16 bytes, IPv4 as IPv4-mapped IPv6) -> 1 */
struct watch_key {
	__u8 addr[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct watch_key);
	__type(value, __u8);
} watch_addrs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} drops SEC(".maps");

static __always_inline void mapped(__u8 out[16], __be32 v4)
{
	__builtin_memset(out, 0, 10);
	out[10] = 0xff;
	out[11] = 0xff;
	__builtin_memcpy(out + 12, &v4, 4);
}

SEC("tp_btf/kfree_skb")
int BPF_PROG(zonlb_trace_kfree_skb, struct sk_buff *skb, void *location, enum skb_drop_reason reason, struct sock *rx_sk)
{
	/* SKB_NOT_DROPPED_YET and SKB_CONSUMED are not drops */
	if (reason < SKB_DROP_REASON_NOT_SPECIFIED)
		return 0;
	unsigned char *head = skb->head;
	__u16 nh = skb->network_header;
	struct watch_key src, dst;
	__u8 protocol;
	int l4;
	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct iphdr iph;
		if (bpf_probe_read_kernel(&iph, sizeof(iph), head + nh) || iph.version != 4)
			return 0;
		mapped(src.addr, iph.saddr);
		mapped(dst.addr, iph.daddr);
		protocol = iph.protocol;
		l4 = iph.ihl * 4;
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr ip6;
		if (bpf_probe_read_kernel(&ip6, sizeof(ip6), head + nh) || ip6.version != 6)
			return 0;
		__builtin_memcpy(src.addr, &ip6.saddr, 16);
		__builtin_memcpy(dst.addr, &ip6.daddr, 16);
		protocol = ip6.nexthdr; /* extension headers are not walked: ports only when TCP/UDP follow at once */
		l4 = sizeof(ip6);
	} else {
		return 0;
	}
	if (!bpf_map_lookup_elem(&watch_addrs, &src) && !bpf_map_lookup_elem(&watch_addrs, &dst))
		return 0;

	struct zonlb_drop_event *e = bpf_ringbuf_reserve(&drops, sizeof(*e), 0);
	if (!e)
		return 0;
	__builtin_memset(e, 0, sizeof(*e));
	e->timestamp_ns = bpf_ktime_get_ns();
	e->location = (__u64)location;
	e->reason = reason;
	__builtin_memcpy(e->saddr, src.addr, 16);
	__builtin_memcpy(e->daddr, dst.addr, 16);
	e->protocol = protocol;
	if (protocol == IPPROTO_TCP || protocol == IPPROTO_UDP) {
		__u16 ports[2];
		if (!bpf_probe_read_kernel(ports, sizeof(ports), head + nh + l4)) {
			e->sport = ports[0];
			e->dport = ports[1];
		}
	}
	struct net_device *dev = skb->dev;
	if (dev) {
		e->ifindex = dev->ifindex;
		bpf_probe_read_kernel_str(e->ifname, sizeof(e->ifname), dev->name);
		e->netns_inode = BPF_CORE_READ(dev, nd_net.net, ns.inum);
	}
	bpf_ringbuf_submit(e, 0);
	return 0;
}

char _license[] SEC("license") = "GPL";
