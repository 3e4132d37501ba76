using System.Text;

namespace ZonLb.Engine.Counters;

/// <summary>
/// The data path's counters, written by the one worker thread that owns them and read (without locks, as
/// whole 64-bit values) by whoever displays them.
/// </summary>
internal sealed class EngineCounters
{
    private readonly long[] _drops = new long[DropReasonNames.Count];

    public long RxPackets;
    public long RxBytes;
    /// <summary>Frames received as chains of several UMEM frames (engine.multi_buffer).</summary>
    public long RxMultiBuffer;
    public long TxPackets;
    public long TxBytes;
    public long ToBackend;
    public long ToClient;
    public long NewConnections;
    public long ExpiredConnections;
    /// <summary>Unassured entries evicted to make room for a new flow (a full table or NAT port range).</summary>
    public long EarlyDrops;
    /// <summary>NAT ports taken over from closed TCP connections (TIME_WAIT, CLOSE) by new ones.</summary>
    public long NatPortsReused;
    public long PartialChecksumsRepaired;
    public long TxKicks;
    public long TxKickErrors;
    public long Held;
    /// <summary>Frames passed to the worker that owns their connection.</summary>
    public long HandedOff;
    /// <summary>ICMP time-exceeded messages sent for frames whose TTL ran out, and those the rate limit held back.</summary>
    public long IcmpTimeExceededSent;
    public long IcmpRateLimited;
    /// <summary>ICMP errors about our connections translated back to the client or the backend.</summary>
    public long IcmpErrorsTranslated;
    /// <summary>ICMP fragmentation-needed / ICMPv6 packet-too-big messages sent for packets over the egress MTU.</summary>
    public long IcmpTooBigSent;
    /// <summary>Fragments after the first, forwarded after their datagram's first fragment.</summary>
    public long FragmentsForwarded;

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
            t.EarlyDrops += c.EarlyDrops; t.NatPortsReused += c.NatPortsReused;
            t.TxKicks += c.TxKicks; t.TxKickErrors += c.TxKickErrors; t.Held += c.Held; t.HandedOff += c.HandedOff;
            t.IcmpTimeExceededSent += c.IcmpTimeExceededSent; t.IcmpRateLimited += c.IcmpRateLimited;
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
