/* SPDX-License-Identifier: MIT */
/* Test harness only: puts a namespace's interface "on VLAN 100" where the kernel has no 802.1Q support
 * (CONFIG_VLAN_8021Q unset): tc egress tags every frame with VLAN 100; tc ingress passes frames of VLAN 100
 * (untagged), and drops untagged IP frames, as a VLAN interface would never see them. Compiled and attached
 * by tests/ZonLb.IntegrationTests/VlanTests.cs (tc clsact, direct action). */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define VLAN_ID 100

SEC("tc/egress")
int vlan_push(struct __sk_buff *skb)
{
	if (bpf_skb_vlan_push(skb, bpf_htons(ETH_P_8021Q), VLAN_ID))
		return TC_ACT_SHOT;
	return TC_ACT_OK;
}

SEC("tc/ingress")
int vlan_pop(struct __sk_buff *skb)
{
	/* the receive path has already moved an inline tag into the skb's metadata */
	if (skb->vlan_present) {
		if ((skb->vlan_tci & 0x0FFF) != VLAN_ID)
			return TC_ACT_SHOT;
		if (bpf_skb_vlan_pop(skb))
			return TC_ACT_SHOT;
		return TC_ACT_OK;
	}
	/* untagged: ARP is let through (the tests use static neighbours anyway); IP is not ours */
	return skb->protocol == bpf_htons(ETH_P_ARP) ? TC_ACT_OK : TC_ACT_SHOT;
}

char _license[] SEC("license") = "Dual MIT/GPL";
