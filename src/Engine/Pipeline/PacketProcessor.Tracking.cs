using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using ZonLb.Engine.Configuration;
using ZonLb.Engine.Counters;
using ZonLb.Engine.Flows;
using ZonLb.Engine.Packets;
using ZonLb.Engine.Services;

namespace ZonLb.Engine.Pipeline;

/// <summary>Connection state: packets counted, TCP tracked, assured, expired, flushed.</summary>
internal sealed partial class PacketProcessor
{
    /// <summary>The per-worker backend counters this worker's connections use, by <see cref="Connection.CountersId"/>.</summary>
    private FlowCounters[] _counters = new FlowCounters[16];
    private int _countersCount;
    private readonly long[] _tcpTimeouts; // by TcpState
    private readonly Func<Connection, long> _timeoutOf;
    private readonly Action<Connection> _releasePort;

    /// <summary>A replied UDP flow still active this long after it began is a stream (conntrack's 2 s).</summary>
    private const long UdpStreamAfterMs = 2000;

    private static long[] TcpTimeouts(EngineOptions o)
    {
        long[] seconds =
        {
            o.TcpCloseTimeoutSeconds, o.TcpSynSentTimeoutSeconds, o.TcpSynRecvTimeoutSeconds, o.TcpEstablishedTimeoutSeconds,
            o.TcpFinWaitTimeoutSeconds, o.TcpCloseWaitTimeoutSeconds, o.TcpLastAckTimeoutSeconds, o.TcpTimeWaitTimeoutSeconds,
            o.TcpCloseTimeoutSeconds,
        };
        var ms = new long[seconds.Length];
        for (int i = 0; i < seconds.Length; i++)
            ms[i] = seconds[i] * 1000L;
        return ms;
    }

    /// <summary>A packet of connection c on its way, in either path: seen now, counted for its service and
    /// backend in its direction, and a reply marks the connection answered.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void CountPacket(ref Connection c, bool toBackend, int frameLength, long now)
    {
        c.LastSeen = now;
        var slot = _counters[c.CountersId];
        if (toBackend)
        {
            slot.PacketsToBackend++;
            slot.BytesToBackend += frameLength;
        }
        else
        {
            slot.PacketsToClient++;
            slot.BytesToClient += frameLength;
            c.Replied = true;
        }
        if (!c.Assured && c.Replied)
            Assure(ref c, now);
    }

    /// <summary>A TCP segment of a full-NAT connection: its flags move the state (an established connection's
    /// segments without SYN, FIN or RST leave it as it is); the client's SYN and FIN set the sequence number a
    /// backend in TIME_WAIT expects beyond.</summary>
    private static void TrackTcp(ref Connection c, ReadOnlySpan<byte> frame, in ParsedPacket p, bool toBackend, long now)
    {
        if (c.TcpState == TcpState.Established && (p.TcpFlags & (Wire.TcpSyn | Wire.TcpFin | Wire.TcpRst)) == 0)
            return;
        var before = c.TcpState;
        c.TcpState = TcpTracker.Next(c.TcpState, p.TcpFlags, toBackend, ref c.FinFromClient);
        if (c.TcpState == TcpState.SynSent && before is TcpState.TimeWait or TcpState.Close)
        {
            // the client opened the tuple again: a new connection, not assured until it is answered
            c.Replied = false;
            c.Assured = false;
            c.Created = now;
        }
        if (toBackend && (p.TcpFlags & (Wire.TcpSyn | Wire.TcpFin)) != 0)
            c.ClientSeqEnd = TcpSeqEnd(frame, in p);
        if (!c.Assured && c.Replied)
            Assure(ref c, now);
    }

    /// <summary>A connection the backend answered is assured (conntrack's IPS_ASSURED: no longer the first to go when
    /// the table or the ports are full) once TCP is established, or once a UDP flow is still active 2 s after it
    /// began (a stream; a single request and answer, such as DNS, stays unassured, on the short timeout).</summary>
    private static void Assure(ref Connection c, long now)
    {
        if (c.Protocol == IpProtocol.Tcp ? c.TcpState is >= TcpState.Established and <= TcpState.TimeWait
            : c.Protocol == IpProtocol.Udp && now - c.Created >= UdpStreamAfterMs)
            c.Assured = true;
    }

    /// <summary>A TCP segment's sequence number (0 for other protocols).</summary>
    private static uint TcpSeq(ReadOnlySpan<byte> frame, in ParsedPacket p) =>
        p.Protocol == IpProtocol.Tcp && p.L4Length >= Wire.TcpMinHeader ? BinaryPrimitives.ReadUInt32BigEndian(frame.Slice(p.L4Offset + 4)) : 0;

    /// <summary>The sequence number after a TCP segment with SYN or FIN: its sequence number, plus its data, plus one.</summary>
    private static uint TcpSeqEnd(ReadOnlySpan<byte> frame, in ParsedPacket p)
    {
        int header = (frame[p.L4Offset + 12] >> 4) * 4;
        return TcpSeq(frame, in p) + (uint)Math.Max(0, p.L4Length + p.Beyond - header) + 1;
    }

    /// <summary>Removes idle connections among the next <paramref name="budget"/> slots of the table.</summary>
    public int SweepConnections(long now, int budget)
    {
        int n = _connections.Sweep(now, budget, _timeoutOf, _releasePort);
        Counters.ExpiredConnections += n;
        return n;
    }

    /// <summary>The idle timeout (ms) of a connection in its current state: TCP by state, at most the unassured
    /// timeout until assured (SYN_SENT keeps its own); UDP the stream timeout once assured.</summary>
    private long TimeoutOf(Connection c) => c.Protocol switch
    {
        IpProtocol.Tcp => c.Assured || c.TcpState == TcpState.SynSent
            ? _tcpTimeouts[(int)c.TcpState]
            : Math.Min(_tcpTimeouts[(int)c.TcpState], _options.TcpUnassuredTimeoutSeconds * 1000L),
        IpProtocol.Udp => (c.Assured ? _options.UdpStreamTimeoutSeconds : _options.UdpTimeoutSeconds) * 1000L,
        _ => _options.IcmpTimeoutSeconds * 1000L,
    };

    /// <summary>Forgets every connection that matches (all when which is null; conntrack flush); returns how many.</summary>
    public int FlushConnections(Func<Connection, bool>? which = null) => FlushConnections(0, _connections.Capacity, which);

    /// <summary>As <see cref="FlushConnections(Func{Connection, bool}?)"/>, over the table's slots [from, to) only.</summary>
    public int FlushConnections(int from, int to, Func<Connection, bool>? which)
    {
        int n = 0;
        for (int i = from; i < to; i++)
        {
            ref var c = ref _connections[i];
            if (!c.InUse || (which != null && !which(c)))
                continue;
            OnRemoved(c);
            _connections.Remove(i);
            n++;
        }
        return n;
    }

    /// <summary>Releases what a connection held: its NAT port and its place in the active counts.</summary>
    private void OnRemoved(Connection c)
    {
        var s = _table.Services[c.ServiceIndex];
        s.PerWorker[_worker].ActiveConnections--;
        s.Backends[c.BackendIndex].PerWorker[_worker].ActiveConnections--;
        if (!c.Dsr && _natPorts.TryGetValue((c.SnatIp, c.BackendIp, c.BackendPort, c.Protocol), out var ports))
            ports.Release(c.NatPort);
    }

    /// <summary>The index of this worker's counters of a backend in its list, added at their first connection
    /// (the list grows with the backends this worker has seen, across reloads).</summary>
    private int CountersIdOf(FlowCounters bc)
    {
        if (bc.IdOwner != this)
        {
            if (_countersCount == _counters.Length)
                Array.Resize(ref _counters, _counters.Length * 2);
            bc.Id = _countersCount;
            bc.IdOwner = this;
            _counters[_countersCount++] = bc;
        }
        return bc.Id;
    }
}
