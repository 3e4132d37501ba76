using System.Runtime.InteropServices;

namespace ZonLb.Native.Abi;

/// <summary>Constants of the AF_XDP socket API (include/uapi/linux/if_xdp.h).</summary>
internal static class XdpConstants
{
    // setsockopt/getsockopt names at SOL_XDP
    public const int XDP_MMAP_OFFSETS = 1;
    public const int XDP_RX_RING = 2;
    public const int XDP_TX_RING = 3;
    public const int XDP_UMEM_REG = 4;
    public const int XDP_UMEM_FILL_RING = 5;
    public const int XDP_UMEM_COMPLETION_RING = 6;
    public const int XDP_STATISTICS = 7;

    // sockaddr_xdp.sxdp_flags
    public const ushort XDP_SHARED_UMEM = 1 << 0;
    public const ushort XDP_COPY = 1 << 1;
    public const ushort XDP_ZEROCOPY = 1 << 2;
    public const ushort XDP_USE_NEED_WAKEUP = 1 << 3;
    /// <summary>Multi-buffer (Linux 6.6): a frame may span several UMEM chunks, as several descriptors.</summary>
    public const ushort XDP_USE_SG = 1 << 4;

    // xdp_desc.options
    /// <summary>More descriptors of the same frame follow this one (multi-buffer).</summary>
    public const uint XDP_PKT_CONTD = 1 << 0;

    // ring flags word
    public const uint XDP_RING_NEED_WAKEUP = 1 << 0;

    // mmap page offsets of the rings
    public const long XDP_PGOFF_RX_RING = 0;
    public const long XDP_PGOFF_TX_RING = 0x80000000;
    public const long XDP_UMEM_PGOFF_FILL_RING = 0x100000000;
    public const long XDP_UMEM_PGOFF_COMPLETION_RING = 0x180000000;
}

/// <summary>struct sockaddr_xdp { __u16 sxdp_family; __u16 sxdp_flags; __u32 sxdp_ifindex; __u32 sxdp_queue_id; __u32 sxdp_shared_umem_fd; };</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct SockaddrXdp
{
    public ushort Family;
    public ushort Flags;
    public uint IfIndex;
    public uint QueueId;
    public uint SharedUmemFd;
}

/// <summary>struct xdp_umem_reg (v1 layout, accepted by every kernel): { __u64 addr; __u64 len; __u32 chunk_size; __u32 headroom; };</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct XdpUmemReg
{
    public ulong Addr;
    public ulong Len;
    public uint ChunkSize;
    public uint Headroom;
}

/// <summary>struct xdp_ring_offset { __u64 producer; __u64 consumer; __u64 desc; __u64 flags; };</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct XdpRingOffset
{
    public ulong Producer;
    public ulong Consumer;
    public ulong Desc;
    public ulong Flags;
}

/// <summary>struct xdp_mmap_offsets { struct xdp_ring_offset rx, tx, fr, cr; };</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct XdpMmapOffsets
{
    public XdpRingOffset Rx;
    public XdpRingOffset Tx;
    public XdpRingOffset Fill;
    public XdpRingOffset Completion;
}

/// <summary>struct xdp_desc { __u64 addr; __u32 len; __u32 options; }: an RX or TX ring entry.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct XdpDesc
{
    public ulong Addr;
    public uint Len;
    public uint Options;

    /// <summary>More descriptors of the same frame follow this one (XDP_PKT_CONTD, multi-buffer sockets only).</summary>
    public readonly bool Continues => (Options & XdpConstants.XDP_PKT_CONTD) != 0;

    /// <summary>The options of a descriptor that more of its frame follow (XDP_PKT_CONTD), or of a frame's last.</summary>
    public static uint OptionsFor(bool continues) => continues ? XdpConstants.XDP_PKT_CONTD : 0;
}

/// <summary>struct xdp_statistics: the kernel's per-socket counters (XDP_STATISTICS).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct XdpStatistics
{
    public ulong RxDropped;
    public ulong RxInvalidDescs;
    public ulong TxInvalidDescs;
    public ulong RxRingFull;
    public ulong RxFillRingEmptyDescs;
    public ulong TxRingEmptyDescs;
}
