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

    /// <summary>
    /// The hash the connection table indexes by, keyed with secrets drawn at process start (<see cref="Seeds"/>):
    /// whoever picks the tuples (a spoofed flood controls source addresses and ports) cannot pick ones that collide,
    /// and so cannot build long probe chains, as it could against a fixed function. The source address is folded
    /// first through a keyed 64x64->128 multiply (wyhash's mum), then with the destination and the ports through
    /// another: each field meets a secret before it meets another field, so no choice of fields cancels out.
    /// Not the flow hash that picks a backend (<see cref="Balancing.StableHash"/>), which must be the same on every
    /// instance.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public override int GetHashCode() =>
        Mix(Mum(SrcIp.Lo ^ Seeds.Source0, SrcIp.Hi ^ Seeds.Source1) ^ DstIp.Lo ^ (DstIp.Hi * 0x94D049BB133111EBUL), SrcPort, DstPort, Protocol);

    /// <summary>The hash of the key of IPv4 addresses src and dst (host order) and these ports: what
    /// <see cref="GetHashCode"/> gives for it, from plain numbers (the fast lane hashes before any
    /// <see cref="IpAddr"/> exists). An IPv4-mapped address has a high half of 0 and a low half of 0000:ffff plus
    /// the address.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int HashV4(uint src, uint dst, ushort srcPort, ushort dstPort, IpProtocol protocol) =>
        Mix(Mum((V4Mapped | src) ^ Seeds.Source0, Seeds.Source1) ^ (V4Mapped | dst), srcPort, dstPort, protocol);

    private const ulong V4Mapped = 0xFFFFUL << 32;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Mix(ulong addresses, ushort srcPort, ushort dstPort, IpProtocol protocol)
    {
        ulong ports = ((ulong)srcPort << 24) | ((ulong)dstPort << 8) | (byte)protocol;
        ulong h = Mum(addresses ^ Seeds.Mix0, ports ^ Seeds.Mix1);
        return (int)(h ^ (h >> 32));
    }

    /// <summary>The 128-bit product of a and b, its halves folded (wyhash's mum).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Mum(ulong a, ulong b)
    {
        ulong hi = Math.BigMul(a, b, out ulong lo);
        return hi ^ lo;
    }

    /// <summary>The hash's secrets: drawn once per process from the system's random source, odd (a multiplier of 0 or
    /// of few bits would weaken the product).</summary>
    private static class Seeds
    {
        public static readonly ulong Source0 = Draw(), Source1 = Draw(), Mix0 = Draw(), Mix1 = Draw();

        private static ulong Draw()
        {
            Span<byte> b = stackalloc byte[8];
            System.Security.Cryptography.RandomNumberGenerator.Fill(b);
            return System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(b) | 1;
        }
    }

    public override string ToString() =>
        $"{Protocol.ToString().ToLowerInvariant()} {SrcIp.WithPort(SrcPort)} -> {DstIp.WithPort(DstPort)}";
}
