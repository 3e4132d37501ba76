/* SPDX-License-Identifier: MIT */
/* The ICMPv4 header as far as the steering program reads it. <linux/icmp.h> is not used: since Linux 5.x it
 * includes <linux/if.h>, which pulls in glibc's <sys/socket.h> and, for -target bpf, glibc's 32-bit stubs
 * (gnu/stubs-32.h, only in libc6-dev-i386). The kernel's UAPI numbers are fixed (RFC 792). */
#ifndef ZONLB_ICMP_H
#define ZONLB_ICMP_H

#include <linux/types.h>

#define ICMP_ECHOREPLY 0
#define ICMP_DEST_UNREACH 3
#define ICMP_ECHO 8
#define ICMP_TIME_EXCEEDED 11

struct icmphdr {
	__u8 type;
	__u8 code;
	__sum16 checksum;
	union {
		struct {
			__be16 id;
			__be16 sequence;
		} echo;
		__be32 gateway;
	} un;
};

#endif
