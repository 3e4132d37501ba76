// A test's own XDP program, loaded with xdp-loader (libxdp) to share an interface with zonlb_xdp: it counts every
// frame it sees and passes it on, first in the dispatcher (priority 10; zonlb_xdp has libxdp's default, 50).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <xdp/xdp_helpers.h>

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u64);
} frames_seen SEC(".maps");

struct {
    __uint(priority, 10);
    __uint(XDP_PASS, 1);
} XDP_RUN_CONFIG(count_frames);

SEC("xdp")
int count_frames(struct xdp_md *ctx)
{
    __u32 key = 0;
    __u64 *n = bpf_map_lookup_elem(&frames_seen, &key);
    if (n)
        __sync_fetch_and_add(n, 1);
    return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
