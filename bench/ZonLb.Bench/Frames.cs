using System.Buffers.Binary;
using ZonLb.Engine.Checksums;

namespace ZonLb.Bench;

/// <summary>Builds benchmark frames without the test library (benchmarks do not depend on tests).</summary>
internal static class Frames
{
    /// <summary>An Ethernet/IPv4/TCP ACK frame of the given total length with valid checksums.</summary>
    public static byte[] Tcp(uint src, ushort sport, uint dst, ushort dport, int frameLength)
    {
        var f = new byte[frameLength];
        f[12] = 0x08;
        var ip = f.AsSpan(14);
        ip[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(ip.Slice(2), (ushort)(frameLength - 14));
        ip[8] = 64;
        ip[9] = 6;
        BinaryPrimitives.WriteUInt32BigEndian(ip.Slice(12), src);
        BinaryPrimitives.WriteUInt32BigEndian(ip.Slice(16), dst);
        BinaryPrimitives.WriteUInt16BigEndian(ip.Slice(10), InternetChecksum.IPv4Header(ip.Slice(0, 20)));
        var tcp = ip.Slice(20, frameLength - 34);
        BinaryPrimitives.WriteUInt16BigEndian(tcp, sport);
        BinaryPrimitives.WriteUInt16BigEndian(tcp.Slice(2), dport);
        tcp[12] = 0x50;
        tcp[13] = 0x10;
        BinaryPrimitives.WriteUInt16BigEndian(tcp.Slice(14), 64240);
        ushort sum = InternetChecksum.Add(InternetChecksum.PseudoHeaderSum(src, dst, 6, tcp.Length), InternetChecksum.Sum(tcp));
        BinaryPrimitives.WriteUInt16BigEndian(tcp.Slice(16), InternetChecksum.Finish(sum));
        return f;
    }

    /// <summary>An Ethernet/IPv4/UDP frame of the given total length with valid checksums.</summary>
    public static byte[] Udp(uint src, ushort sport, uint dst, ushort dport, int frameLength)
    {
        var f = new byte[frameLength];
        f[12] = 0x08;
        var ip = f.AsSpan(14);
        ip[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(ip.Slice(2), (ushort)(frameLength - 14));
        ip[8] = 64;
        ip[9] = 17;
        BinaryPrimitives.WriteUInt32BigEndian(ip.Slice(12), src);
        BinaryPrimitives.WriteUInt32BigEndian(ip.Slice(16), dst);
        BinaryPrimitives.WriteUInt16BigEndian(ip.Slice(10), InternetChecksum.IPv4Header(ip.Slice(0, 20)));
        var udp = ip.Slice(20, frameLength - 34);
        BinaryPrimitives.WriteUInt16BigEndian(udp, sport);
        BinaryPrimitives.WriteUInt16BigEndian(udp.Slice(2), dport);
        BinaryPrimitives.WriteUInt16BigEndian(udp.Slice(4), (ushort)udp.Length);
        ushort sum = InternetChecksum.Add(InternetChecksum.PseudoHeaderSum(src, dst, 17, udp.Length), InternetChecksum.Sum(udp));
        BinaryPrimitives.WriteUInt16BigEndian(udp.Slice(6), InternetChecksum.Finish(sum));
        return f;
    }
}
