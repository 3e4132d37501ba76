using System.Runtime.InteropServices;

namespace ZonLb.Native.Abi;

/// <summary>Constants of the AF_XDP socket API (include/uapi/linux/if_xdp.h).</summary>
internal static class XdpConstants
{
    // getsockopt names at SOL_XDP (the sockets are set up by libxdp; these are what we read of them)
    public const int XDP_MMAP_OFFSETS = 1;
    public const int XDP_STATISTICS = 7;
    public const int XDP_OPTIONS = 8;

    /// <summary>XDP_OPTIONS: the socket is bound in zero-copy mode.</summary>
    public const uint XDP_OPTIONS_ZEROCOPY = 1 << 0;

    // bind flags (sockaddr_xdp.sxdp_flags, xsk_socket_config.bind_flags)
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
