/* SPDX-License-Identifier: MIT */
/* The ABI between the XDP program and the C# engine (mirrored in src/Native/Bpf/SteeringAbi.cs).
 * Addresses and ports are kept in network byte order, as they appear in the packet. */
#ifndef ZONLB_ABI_H
#define ZONLB_ABI_H

#include <linux/types.h>

/* XSKMAP slots: slot = interface base + rx queue index. */
#define ZONLB_MAX_XSKS 256

/* Addresses are 16 bytes: IPv6 as is, IPv4 as IPv4-mapped IPv6 (::ffff:a.b.c.d). */

struct zonlb_addr {
	__u8 addr[16];
};

/* services: frames to (vip, proto, port) are steered. ICMP echo services use port 0; proto is the
 * packet's own (1 for ICMP, 58 for ICMPv6). */
struct zonlb_service_key {
	__u8 addr[16];
	__be16 port;
	__u8 proto;
	__u8 pad;
};

/* nat_addrs: frames to (snat address, proto) whose destination port (ICMP: echo identifier)
 * lies in [port_min, port_max] are replies to our translated connections. */
struct zonlb_nat_key {
	__u8 addr[16];
	__u8 proto;
	__u8 pad[3];
};

struct zonlb_nat_range {
	__u16 port_min; /* host byte order */
	__u16 port_max;
};

/* if_slots: ingress ifindex -> the interface's XSKMAP slots: queue q of the interface goes to slot first + q, for
 * q < count (a frame on a queue without a socket, after the queue count was raised, passes). */
struct zonlb_if_slots {
	__u32 first;
	__u32 count;
};

/* frag_flows: datagrams whose first fragment was steered, by (source, destination, IP identification, protocol);
 * their later fragments, which carry no ports, are steered too, and no others (the host's own fragmented traffic to
 * a VIP or SNAT address stays with the kernel). An LRU hash: old datagrams age out. Value: unused (1). */
struct zonlb_frag_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__u32 id;
	__u8 proto;
	__u8 pad[3];
};

/* owner[0]: the zonlb-afxdp process that attached the program: its PID and its start time (/proc/PID/stat field 22,
 * clock ticks after boot), so that a PID reused by another process is not taken for it. */
struct zonlb_owner {
	__u32 pid;
	__u32 pad;
	__u64 start_time;
};

/* Counter slots of the per-CPU stats array. */
enum zonlb_xdp_counter {
	ZONLB_XDP_SEEN = 0,
	ZONLB_XDP_REDIRECTED = 1,
	ZONLB_XDP_PASSED = 2,
	ZONLB_XDP_NO_SOCKET = 3,
	ZONLB_XDP_COUNTERS = 4,
};

#endif
