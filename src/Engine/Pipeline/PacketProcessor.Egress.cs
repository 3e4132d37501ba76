using System.Buffers.Binary;
using ZonLb.Engine.Counters;
using ZonLb.Engine.Flows;
using ZonLb.Engine.Packets;
using ZonLb.Engine.Routing;

namespace ZonLb.Engine.Pipeline;

/// <summary>The way out of a translated frame: next hop, port, VLAN tag, MTU and MACs.</summary>
internal sealed partial class PacketProcessor
{
    /// <summary>Retries the next hop of a held (already translated) frame.</summary>
    public Verdict RetryHeld(Span<byte> frame, in IpAddr nextHop, long now, out Forwarding f)
    {
        f = default;
        int noHint = -1;
        return Route(frame, nextHop, now, ref noHint, ref f);
    }

    /// <summary>Routes a frame of connection c already translated toward destination, in its direction: with the
    /// connection's next-hop hint, and back toward the client with the client's tag.</summary>
    private Verdict RouteFor(Span<byte> frame, ref Connection c, bool toBackend, in IpAddr destination, long now, ref Forwarding f)
    {
        var verdict = Route(frame, destination, now, ref toBackend ? ref c.HopToBackend : ref c.HopToClient, ref f);
        TagTowardClient(ref f, in c, toBackend);
        return verdict;
    }

    /// <summary>A translated frame to destination: its next hop's MACs written, or held while the neighbour is
    /// resolved, or dropped without a route or over its egress MTU (a frame held while its route was asked for
    /// meets its egress MTU only now: not answered with ICMP, rare).</summary>
    private Verdict Route(Span<byte> frame, in IpAddr destination, long now, ref int slotHint, ref Forwarding f)
    {
        var state = _egress.Lookup(destination, now, ref slotHint, out var hop, out int port, out f.Vlan, out var reason);
        f.EgressIfIndex = hop.IfIndex;
        f.NextHop = destination;
        if (reason != DropReason.None)
            return Drop(reason, ref f);
        if (state == NextHopState.Pending)
            return Verdict.Hold;
        if (IpLength(frame) is int length && length > _egress.MtuOf(port))
            return Drop(DontFragment(frame) ? DropReason.FragmentationNeeded : DropReason.MtuExceeded, ref f);
        _egress.WriteMacs(frame, in hop, port);
        return Verdict.Transmit;
    }

    /// <summary>Back toward the client, a frame whose route gives no tag leaves with the tag the client's packets
    /// came with.</summary>
    private static void TagTowardClient(ref Forwarding f, in Connection c, bool toBackend)
    {
        if (!toBackend && f.Vlan == 0)
            f.Vlan = c.ClientVlan;
    }

    /// <summary>A packet over its egress port's MTU: not sent. IPv6 routers never fragment; IPv4 packets with DF
    /// set ask not to be fragmented (both answered by the worker with ICMP, with the MTU in f); the engine does
    /// not fragment the others either (counted apart).</summary>
    private Verdict TooBig(ReadOnlySpan<byte> frame, in ParsedPacket p, int port, ref Forwarding f)
    {
        f.Mtu = _egress.MtuOf(port);
        bool df = p.IsV6 || (frame[p.L3Offset + Wire.IpFragment] & 0x40) != 0;
        return Drop(df ? DropReason.FragmentationNeeded : DropReason.MtuExceeded, ref f);
    }

    /// <summary>The IP packet's length from its header (past one VLAN tag), or null when the frame is too short.</summary>
    private static int? IpLength(ReadOnlySpan<byte> frame)
    {
        int l3 = L3Offset(frame);
        if (frame.Length < l3 + 6)
            return null;
        return frame[l3] >> 4 == 6
            ? Wire.IPv6Header + BinaryPrimitives.ReadUInt16BigEndian(frame.Slice(l3 + Wire.Ip6PayloadLength))
            : BinaryPrimitives.ReadUInt16BigEndian(frame.Slice(l3 + 2));
    }

    /// <summary>IPv6 (never fragmented by routers), or IPv4 with DF set.</summary>
    private static bool DontFragment(ReadOnlySpan<byte> frame)
    {
        int l3 = L3Offset(frame);
        return frame[l3] >> 4 == 6 || (frame[l3 + Wire.IpFragment] & 0x40) != 0;
    }

    private static int L3Offset(ReadOnlySpan<byte> frame) =>
        frame.Length >= Wire.EthernetHeader + 4 && frame[12] == 0x81 && frame[13] == 0x00 ? Wire.EthernetHeader + 4 : Wire.EthernetHeader;
}
