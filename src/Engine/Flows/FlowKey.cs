using System.Runtime.CompilerServices;
using ZonLb.Engine.Packets;

namespace ZonLb.Engine.Flows;

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
        return Mix(a, SrcPort, DstPort, Protocol);
    }

    /// <summary>The hash of the key of IPv4 addresses src and dst (host order) and these ports: what
    /// <see cref="GetHashCode"/> gives for it, from plain numbers (the fast lane hashes before any
    /// <see cref="IpAddr"/> exists). For IPv4-mapped addresses the high halves are 0 and the low ones are
    /// 0000:ffff plus the address, so the first step reduces to this.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int HashV4(uint src, uint dst, ushort srcPort, ushort dstPort, IpProtocol protocol) =>
        Mix(((ulong)src << 32) ^ 0x0000_FFFF_0000_0000UL ^ dst ^ 0xFFFFUL, srcPort, dstPort, protocol);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Mix(ulong addresses, ushort srcPort, ushort dstPort, IpProtocol protocol)
    {
        ulong b = ((ulong)srcPort << 24) | ((ulong)dstPort << 8) | (byte)protocol;
        ulong h = (addresses ^ (b * 0x9E3779B97F4A7C15UL)) * 0xBF58476D1CE4E5B9UL;
        return (int)(h ^ (h >> 31) ^ (h >> 47));
    }

    public override string ToString() =>
        $"{Protocol.ToString().ToLowerInvariant()} {SrcIp.WithPort(SrcPort)} -> {DstIp.WithPort(DstPort)}";
}
