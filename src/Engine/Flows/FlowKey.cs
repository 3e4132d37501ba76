using System.Runtime.CompilerServices;
using ZonLb.Engine.Packets;

namespace ZonLb.Engine.Flows;

/// <summary>The fragments of one datagram: source, destination, protocol and IP identification.</summary>
internal readonly record struct FragmentKey(IpAddr Src, IpAddr Dst, uint Id, IpProtocol Protocol);

/// <summary>What a datagram's first fragment decided for the later ones: its connection and direction.</summary>
internal readonly record struct FragmentRoute(int Connection, bool ToBackend, long Expires);

/// <summary>A directional 5-tuple as seen in a packet (ports host-order numbers).</summary>
internal readonly struct FlowKey : IEquatable<FlowKey>
{
    public readonly IpAddr SrcIp;
    public readonly IpAddr DstIp;
    public readonly ushort SrcPort;
    public readonly ushort DstPort;
    public readonly IpProtocol Protocol;

    public FlowKey(IpAddr srcIp, IpAddr dstIp, ushort srcPort, ushort dstPort, IpProtocol protocol)
    {
        SrcIp = srcIp;
        DstIp = dstIp;
        SrcPort = srcPort;
        DstPort = dstPort;
        Protocol = protocol;
    }

    public bool Equals(FlowKey o) =>
        SrcIp == o.SrcIp && DstIp == o.DstIp && SrcPort == o.SrcPort && DstPort == o.DstPort && Protocol == o.Protocol;

    public override bool Equals(object? obj) => obj is FlowKey k && Equals(k);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public override int GetHashCode()
    {
        // IPv4 addresses live in the low halves (the high halves are 0): mixing the low halves first keeps an
        // IPv4 key's hash one multiply away from what it was with 32-bit addresses.
        ulong a = (SrcIp.Lo << 32) ^ DstIp.Lo ^ (SrcIp.Lo >> 32) ^ ((SrcIp.Hi ^ (DstIp.Hi * 0x94D049BB133111EBUL)) * 0xD6E8FEB86659FD93UL);
        ulong b = ((ulong)SrcPort << 24) | ((ulong)DstPort << 8) | (byte)Protocol;
        ulong h = (a ^ (b * 0x9E3779B97F4A7C15UL)) * 0xBF58476D1CE4E5B9UL;
        return (int)(h ^ (h >> 31) ^ (h >> 47));
    }

    public override string ToString() =>
        $"{Protocol.ToString().ToLowerInvariant()} {SrcIp.WithPort(SrcPort)} -> {DstIp.WithPort(DstPort)}";
}
