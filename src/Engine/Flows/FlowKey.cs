using System.Runtime.CompilerServices;
using ZonLb.Engine.Packets;

namespace ZonLb.Engine.Flows;

/// <summary>A directional 5-tuple as seen in a packet (addresses and ports host-order numbers).</summary>
public readonly struct FlowKey : IEquatable<FlowKey>
{
    public readonly uint SrcIp;
    public readonly uint DstIp;
    public readonly ushort SrcPort;
    public readonly ushort DstPort;
    public readonly IpProtocol Protocol;

    public FlowKey(uint srcIp, uint dstIp, ushort srcPort, ushort dstPort, IpProtocol protocol)
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
        ulong a = ((ulong)SrcIp << 32) | DstIp;
        ulong b = ((ulong)SrcPort << 24) | ((ulong)DstPort << 8) | (byte)Protocol;
        ulong h = (a ^ (b * 0x9E3779B97F4A7C15UL)) * 0xBF58476D1CE4E5B9UL;
        return (int)(h ^ (h >> 31) ^ (h >> 47));
    }

    public override string ToString() =>
        $"{Protocol.ToString().ToLowerInvariant()} {Ip(SrcIp)}:{SrcPort} -> {Ip(DstIp)}:{DstPort}";

    internal static string Ip(uint a) => $"{a >> 24}.{(a >> 16) & 255}.{(a >> 8) & 255}.{a & 255}";
}
