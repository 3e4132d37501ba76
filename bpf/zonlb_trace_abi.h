/* SPDX-License-Identifier: MIT */
/* The ABI between the drop tracer (zonlb_trace.bpf.c) and `zonlb-afxdp trace` (src/Native/Bpf/DropTracer.cs). */
#ifndef ZONLB_TRACE_ABI_H
#define ZONLB_TRACE_ABI_H

/* One dropped packet. Addresses are 16 bytes (IPv4 as IPv4-mapped IPv6); ports in network byte order. */
struct zonlb_drop_event {
	__u64 timestamp_ns;  /* bpf_ktime_get_ns() */
	__u64 location;      /* kernel address of the caller of kfree_skb */
	__u32 reason;        /* enum skb_drop_reason */
	__u32 ifindex;
	__u32 netns_inode;
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
	__u8 protocol;
	__u8 pad[3];
	char ifname[16];
};

#endif
