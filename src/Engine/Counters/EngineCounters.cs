using System.Runtime.InteropServices;
using System.Text;

namespace ZonLb.Engine.Counters;

/// <summary>
/// The data path's counters, written by the one worker thread that owns them and read (without locks, as
/// whole 64-bit values) by whoever displays them: readers sum the workers' blocks (<see cref="Sum"/>).
/// </summary>
[StructLayout(LayoutKind.Explicit, Size = 320)]
internal sealed class EngineCounters
{
    // Explicit layout: the counters fill cache lines of their own, with a line of padding before and after, so
    // that two workers' counter blocks, allocated one after the other, never share a line.
    [FieldOffset(0)] private readonly long[] _drops = new long[DropReasonNames.Count];
    [FieldOffset(64)] public long RxPackets;
    [FieldOffset(72)] public long RxBytes;
    /// <summary>Frames received as chains of several UMEM frames (engine.multi_buffer).</summary>
    [FieldOffset(80)] public long RxMultiBuffer;
    [FieldOffset(88)] public long TxPackets;
    [FieldOffset(96)] public long TxBytes;
    [FieldOffset(104)] public long ToBackend;
    [FieldOffset(112)] public long ToClient;
    [FieldOffset(120)] public long NewConnections;
    [FieldOffset(128)] public long ExpiredConnections;
    /// <summary>Unassured entries evicted to make room for a new flow (a full table or NAT port range).</summary>
    [FieldOffset(136)] public long EarlyDrops;
    /// <summary>NAT ports taken over from closed TCP connections (TIME_WAIT, CLOSE) by new ones.</summary>
    [FieldOffset(144)] public long NatPortsReused;
    [FieldOffset(152)] public long PartialChecksumsRepaired;
    [FieldOffset(160)] public long TxKicks;
    [FieldOffset(168)] public long TxKickErrors;
    [FieldOffset(176)] public long Held;
    /// <summary>Frames passed to the worker that owns their connection.</summary>
    [FieldOffset(184)] public long HandedOff;
    /// <summary>ICMP time-exceeded messages sent for frames whose TTL ran out.</summary>
    [FieldOffset(192)] public long IcmpTimeExceededSent;
    /// <summary>ICMP errors the rate limit held back.</summary>
    [FieldOffset(200)] public long IcmpRateLimited;
    /// <summary>ICMP errors about our connections translated back to the client or the backend.</summary>
    [FieldOffset(208)] public long IcmpErrorsTranslated;
    /// <summary>ICMP fragmentation-needed / ICMPv6 packet-too-big messages sent for packets over the egress MTU.</summary>
    [FieldOffset(216)] public long IcmpTooBigSent;
    /// <summary>Fragments after the first, forwarded after their datagram's first fragment.</summary>
    [FieldOffset(224)] public long FragmentsForwarded;
    /// <summary>Resets sent to end a backend's TIME_WAIT on a NAT port a new connection takes over.</summary>
    [FieldOffset(232)] public long TimeWaitResets;
    /// <summary>ICMP errors not sent because the frame was of a kind never answered (an ICMP error, a later fragment, a
    /// multicast, broadcast, loopback or unspecified source, a group destination).</summary>
    [FieldOffset(240)] public long IcmpNotAnswered;

    public void Drop(DropReason reason) => _drops[(int)reason]++;

    /// <summary>A new object holding the sum of several workers' counters.</summary>
    public static EngineCounters Sum(IEnumerable<EngineCounters> all)
    {
        var t = new EngineCounters();
        foreach (var c in all)
        {
            t.RxPackets += c.RxPackets; t.RxBytes += c.RxBytes; t.RxMultiBuffer += c.RxMultiBuffer; t.TxPackets += c.TxPackets; t.TxBytes += c.TxBytes;
            t.ToBackend += c.ToBackend; t.ToClient += c.ToClient; t.NewConnections += c.NewConnections;
            t.ExpiredConnections += c.ExpiredConnections; t.PartialChecksumsRepaired += c.PartialChecksumsRepaired;
            t.EarlyDrops += c.EarlyDrops; t.NatPortsReused += c.NatPortsReused; t.TimeWaitResets += c.TimeWaitResets;
            t.TxKicks += c.TxKicks; t.TxKickErrors += c.TxKickErrors; t.Held += c.Held; t.HandedOff += c.HandedOff;
            t.IcmpTimeExceededSent += c.IcmpTimeExceededSent; t.IcmpRateLimited += c.IcmpRateLimited; t.IcmpNotAnswered += c.IcmpNotAnswered;
            t.IcmpErrorsTranslated += c.IcmpErrorsTranslated; t.IcmpTooBigSent += c.IcmpTooBigSent;
            t.FragmentsForwarded += c.FragmentsForwarded;
            for (int i = 0; i < t._drops.Length; i++)
                t._drops[i] += Volatile.Read(ref c._drops[i]);
        }
        return t;
    }

    public long Drops(DropReason reason) => Volatile.Read(ref _drops[(int)reason]);

    public long TotalDrops
    {
        get
        {
            long sum = 0;
            for (int i = 1; i < _drops.Length; i++)
                sum += Volatile.Read(ref _drops[i]);
            return sum;
        }
    }

    /// <summary>"reason=n" for every reason with a non-zero count, or "none".</summary>
    public string FormatDrops()
    {
        var sb = new StringBuilder();
        for (int i = 1; i < _drops.Length; i++)
        {
            long n = Volatile.Read(ref _drops[i]);
            if (n == 0)
                continue;
            if (sb.Length > 0)
                sb.Append(' ');
            sb.Append(((DropReason)i).ToLabel()).Append('=').Append(n);
        }
        return sb.Length == 0 ? "none" : sb.ToString();
    }
}
