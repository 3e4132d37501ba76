using ZonLb.Native.Abi;

namespace ZonLb.Engine.Diagnostics;

/// <summary>What a growing AF_XDP socket counter (XDP_STATISTICS) most likely means, and what to do.</summary>
internal static class SocketHints
{
    public static readonly (string Counter, Func<XdpStatistics, ulong> Read, string Cause)[] Rules =
    {
        ("rx_dropped", s => s.RxDropped,
            "the kernel dropped frames for this socket: its RX ring was full, or a frame did not fit a UMEM frame (check the MTU against frame_size)"),
        ("rx_ring_full", s => s.RxRingFull,
            "RX ring full: the worker does not empty it fast enough (more workers on more queues, a larger ring_size, a CPU of its own via cpu_affinity, or worker_fifo_priority when it shares its CPU with the NAPI thread that fills the ring)"),
        ("rx_fill_ring_empty_descs", s => s.RxFillRingEmptyDescs,
            "fill ring empty: the engine is not returning frames fast enough (raise frame_count or ring_size; frames may be stuck in TX or held for ARP; with frames free, the worker is not getting its CPU in time: worker_fifo_priority when it shares its CPU with the NAPI thread that fills the ring)"),
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

/// <summary>What to do when frames are dropped for lack of a resource (logged once per status interval).</summary>
internal static class ExhaustionHints
{
    public static readonly (Counters.DropReason Reason, string Hint)[] Rules =
    {
        (Counters.DropReason.ConnectionTableFull, "the connection table is full: new flows are refused, established ones kept; raise engine.connection_capacity or shorten the timeouts"),
        (Counters.DropReason.NatPortsExhausted, "a (SNAT address, backend) pair has no free NAT port: widen engine.nat_port_min..nat_port_max, add backends or SNAT addresses"),
        (Counters.DropReason.TxRingFull, "a TX ring is full: the kernel sends slower than frames arrive (copy mode sends 32 per kick); raise engine.ring_size or add workers"),
        (Counters.DropReason.NeighborUnresolved, "a next hop did not answer ARP within neighbor_wait_ms: is the backend up and on its link? ('zonlb-afxdp neighbors list')"),
        (Counters.DropReason.HoldQueueFull, "too many frames wait for ARP at once: a next hop is slow or dead"),
        (Counters.DropReason.HandoffFull, "a worker's hand-off ring is full: the owning worker is overloaded"),
        (Counters.DropReason.FramePoolEmpty, "the UMEM frame pool is empty: raise engine.frame_count"),
        (Counters.DropReason.NoBackend, "a service has no backend taking new flows (all down, disabled or weight 0)"),
    };
}
