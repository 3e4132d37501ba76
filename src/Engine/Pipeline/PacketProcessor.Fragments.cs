using ZonLb.Engine.Flows;
using ZonLb.Engine.Packets;

namespace ZonLb.Engine.Pipeline;

/// <summary>Fragments after the first, which carry no ports (<see cref="FragmentTable"/>).</summary>
internal sealed partial class PacketProcessor
{
    /// <summary>
    /// A fragment after the first follows its datagram's first fragment, whose connection and direction were
    /// remembered; only addresses, TTL / hop limit and the IPv4 header checksum change (the L4 checksum, in the
    /// first fragment, already covers the new addresses); direct server return changes only the MACs. Before its
    /// first fragment, it waits.
    /// </summary>
    private Verdict ForwardLaterFragment(Span<byte> frame, in ParsedPacket p, long now, ref Forwarding f)
    {
        if (!_fragments.TryGet(new FragmentKey(p.SrcIp, p.DstIp, p.FragmentId, p.Protocol), now, out var route) ||
            !_connections[route.Connection].InUse)
            return Verdict.HoldFragment;
        ref var c = ref _connections[route.Connection];
        c.LastSeen = now;
        Counters.FragmentsForwarded++;
        if (route.ToBackend)
            Counters.ToBackend++;
        else
            Counters.ToClient++;
        IpAddr destination = c.BackendIp;
        if (!c.Dsr)
        {
            c.Toward(route.ToBackend, out var newSrc, out destination, out _, out _);
            RewriteIpHeader(frame, in p, newSrc, destination);
        }
        return RouteFor(frame, ref c, route.ToBackend, destination, now, ref f);
    }

    /// <summary>Forgets datagrams whose first fragment is older than the fragment lifetime.</summary>
    public void ExpireFragments(long now) => _fragments.Expire(now);
}
