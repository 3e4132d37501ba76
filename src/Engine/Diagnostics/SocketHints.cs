using ZonLb.Native.Abi;

namespace ZonLb.Engine.Diagnostics;

/// <summary>What a growing AF_XDP socket counter (XDP_STATISTICS) most likely means, and what to do.</summary>
public static class SocketHints
{
    public static readonly (string Counter, Func<XdpStatistics, ulong> Read, string Cause)[] Rules =
    {
        ("rx_dropped", s => s.RxDropped,
            "the kernel dropped frames for this socket: its RX ring was full, or a frame did not fit a UMEM frame (check the MTU against frame_size)"),
        ("rx_ring_full", s => s.RxRingFull,
            "RX ring full: the worker does not empty it fast enough (more workers on more queues, a larger ring_size, or a CPU of its own via cpu_affinity)"),
        ("rx_fill_ring_empty_descs", s => s.RxFillRingEmptyDescs,
            "fill ring empty: the engine is not returning frames fast enough (raise frame_count or ring_size; frames may be stuck in TX or held for ARP)"),
        ("rx_invalid_descs", s => s.RxInvalidDescs,
            "invalid RX descriptors: the engine gave the kernel bad fill addresses (a bug: please report it)"),
        ("tx_invalid_descs", s => s.TxInvalidDescs,
            "invalid TX descriptors: a frame address or length the kernel refused (a bug, or a frame larger than the MTU)"),
    };

    /// <summary>The causes of every counter that grew from before to now.</summary>
    public static List<string> Grown(in XdpStatistics before, in XdpStatistics now)
    {
        var list = new List<string>();
        foreach (var (counter, read, cause) in Rules)
        {
            ulong d = read(now) - read(before);
            if (d > 0)
                list.Add($"{counter} +{d}: {cause}");
        }
        return list;
    }

    /// <summary>The causes of every non-zero counter.</summary>
    public static List<string> NonZero(in XdpStatistics s) => Grown(default, s);
}
