using System.Runtime.InteropServices;
using System.Buffers.Binary;
using ZonLb.Engine.Checksums;
using ZonLb.Engine.Packets;

namespace ZonLb.Bench;

/// <summary>Builds benchmark frames without the test library (benchmarks do not depend on tests).</summary>
internal static class Frames
{
    /// <summary>An Ethernet/IPv4/TCP ACK frame of the given total length with valid checksums.</summary>
    public static byte[] Tcp(uint src, ushort sport, uint dst, ushort dport, int frameLength)
    {
        var f = IPv4(src, dst, 6, frameLength, out var tcp);
        BinaryPrimitives.WriteUInt16BigEndian(tcp, sport);
        BinaryPrimitives.WriteUInt16BigEndian(tcp.Slice(2), dport);
        tcp[12] = 0x50;
        tcp[13] = 0x10;
        BinaryPrimitives.WriteUInt16BigEndian(tcp.Slice(14), 64240);
        WriteL4Checksum(tcp, src, dst, 6, 16);
        return f;
    }

    /// <summary>An Ethernet/IPv4/UDP frame of the given total length with valid checksums.</summary>
    public static byte[] Udp(uint src, ushort sport, uint dst, ushort dport, int frameLength)
    {
        var f = IPv4(src, dst, 17, frameLength, out var udp);
        BinaryPrimitives.WriteUInt16BigEndian(udp, sport);
        BinaryPrimitives.WriteUInt16BigEndian(udp.Slice(2), dport);
        BinaryPrimitives.WriteUInt16BigEndian(udp.Slice(4), (ushort)udp.Length);
        WriteL4Checksum(udp, src, dst, 17, 6);
        return f;
    }

    /// <summary>An Ethernet/IPv6 TCP ACK or UDP frame of the given total length with a valid checksum.</summary>
    public static byte[] V6(bool tcp, IpAddr src, ushort sport, IpAddr dst, ushort dport, int frameLength)
    {
        var f = new byte[frameLength];
        f[12] = 0x86;
        f[13] = 0xDD;
        var ip = f.AsSpan(14);
        ip[0] = 0x60;
        BinaryPrimitives.WriteUInt16BigEndian(ip.Slice(4), (ushort)(frameLength - 54));
        ip[6] = tcp ? (byte)6 : (byte)17;
        ip[7] = 64;
        src.WriteV6(ip.Slice(8));
        dst.WriteV6(ip.Slice(24));
        var l4 = ip.Slice(40);
        BinaryPrimitives.WriteUInt16BigEndian(l4, sport);
        BinaryPrimitives.WriteUInt16BigEndian(l4.Slice(2), dport);
        int cs = tcp ? 16 : 6;
        if (tcp)
        {
            l4[12] = 0x50;
            l4[13] = 0x10;
        }
        else
        {
            BinaryPrimitives.WriteUInt16BigEndian(l4.Slice(4), (ushort)l4.Length);
        }
        ushort sum = InternetChecksum.Add(InternetChecksum.PseudoHeaderSum(src, dst, ip[6], l4.Length), InternetChecksum.Sum(l4));
        BinaryPrimitives.WriteUInt16BigEndian(l4.Slice(cs), InternetChecksum.Finish(sum));
        return f;
    }

    /// <summary>A zeroed frame with its Ethernet type and a valid 20-byte IPv4 header; l4 is the rest.</summary>
    private static byte[] IPv4(uint src, uint dst, byte protocol, int frameLength, out Span<byte> l4)
    {
        var f = new byte[frameLength];
        f[12] = 0x08;
        var ip = f.AsSpan(14);
        ip[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(ip.Slice(2), (ushort)(frameLength - 14));
        ip[8] = 64;
        ip[9] = protocol;
        BinaryPrimitives.WriteUInt32BigEndian(ip.Slice(12), src);
        BinaryPrimitives.WriteUInt32BigEndian(ip.Slice(16), dst);
        BinaryPrimitives.WriteUInt16BigEndian(ip.Slice(10), InternetChecksum.IPv4Header(ip.Slice(0, 20)));
        l4 = ip.Slice(20, frameLength - 34);
        return f;
    }

    private static void WriteL4Checksum(Span<byte> l4, uint src, uint dst, byte protocol, int offset)
    {
        ushort sum = InternetChecksum.Add(InternetChecksum.PseudoHeaderSum(src, dst, protocol, l4.Length), InternetChecksum.Sum(l4));
        BinaryPrimitives.WriteUInt16BigEndian(l4.Slice(offset), InternetChecksum.Finish(sum));
    }

    /// <summary>TTL / hop limit back to 64 (each pass takes one); IPv4's header checksum fixed incrementally.</summary>
    public static void ResetHops(Span<byte> frame, bool v6)
    {
        if (v6)
        {
            frame[14 + 7] = 64;
            return;
        }
        ushort oldWord = (ushort)(frame[22] << 8 | frame[23]);
        ushort newWord = (ushort)(64 << 8 | frame[23]);
        ushort check = (ushort)(frame[24] << 8 | frame[25]);
        check = InternetChecksum.Update16(check, oldWord, newWord);
        frame[22] = 64;
        frame[24] = (byte)(check >> 8);
        frame[25] = (byte)check;
    }

    /// <summary>Swaps source and destination addresses and ports (checksums stay valid): a translated packet
    /// becomes its reply.</summary>
    public static void SwapEnds(Span<byte> frame, bool v6)
    {
        // fixed-size loads and stores: this runs twice per measured packet, so it must cost next to nothing
        int l4 = v6 ? 54 : 34;
        if (v6)
        {
            var src = MemoryMarshal.Read<System.Runtime.Intrinsics.Vector128<byte>>(frame.Slice(22));
            var dst = MemoryMarshal.Read<System.Runtime.Intrinsics.Vector128<byte>>(frame.Slice(38));
            MemoryMarshal.Write(frame.Slice(22), in dst);
            MemoryMarshal.Write(frame.Slice(38), in src);
        }
        else
        {
            ulong both = MemoryMarshal.Read<ulong>(frame.Slice(26));
            MemoryMarshal.Write(frame.Slice(26), (both >> 32) | (both << 32));
        }
        uint ports = MemoryMarshal.Read<uint>(frame.Slice(l4));
        MemoryMarshal.Write(frame.Slice(l4), (ports >> 16) | (ports << 16));
    }
}
