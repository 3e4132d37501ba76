using System.Buffers.Binary;
using PacketDotNet;
using ZonLb.Engine.Checksums;
using ZonLb.Testing;

namespace ZonLb.UnitTests;

public class ChecksumTests
{
    public static IEnumerable<object[]> Lengths() =>
        new[] { 0, 1, 2, 3, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 576, 1499, 1500, 9000 }.Select(n => new object[] { n });

    [Theory]
    [MemberData(nameof(Lengths))]
    public void Every_sum_path_agrees_with_the_reference_at_every_alignment(int length)
    {
        var rng = new Random(length);
        var buffer = new byte[length + 8];
        rng.NextBytes(buffer);
        for (int offset = 0; offset < 8; offset++)
        {
            var data = buffer.AsSpan(offset, length);
            ushort expected = ReferenceChecksum.Sum(data);
            Assert.Equal(expected, InternetChecksum.SumScalar(data));
            Assert.Equal(expected, InternetChecksum.SumScalar64(data));
            Assert.Equal(expected, InternetChecksum.SumVector128(data));
            Assert.Equal(expected, InternetChecksum.SumVector256(data));
            Assert.Equal(expected, InternetChecksum.SumVector512(data));
            Assert.Equal(expected, InternetChecksum.Sum(data));
        }
    }

    [Fact]
    public void Sum_of_all_ones_words_does_not_overflow()
    {
        var data = new byte[65536];
        Array.Fill(data, (byte)0xFF);
        Assert.Equal(ReferenceChecksum.Sum(data), InternetChecksum.Sum(data));
    }

    /// <summary>A ones' complement sum is its value modulo 0xFFFF, written 0xFFFF (not 0) when the value is a
    /// non-zero multiple: the definition, independent of how Fold carries.</summary>
    [Fact]
    public void Fold_gives_the_value_modulo_0xFFFF_for_any_64_bit_sum()
    {
        static ushort Reference(ulong v) => v == 0 ? (ushort)0 : v % 0xFFFF == 0 ? (ushort)0xFFFF : (ushort)(v % 0xFFFF);
        var values = new List<ulong> { 0, 1, 0xFFFE, 0xFFFF, 0x10000, 0x1FFFE, 0xFFFF_FFFF, 0x1_0000_0000, 0xFFFF_FFFF_FFFF_FFFF,
            0xFFFF_0000_0000_0000, 0x0000_FFFF_FFFF_0000, 0x8000_0000_8000_0000, 0xFFFE_FFFF_FFFF_FFFF };
        var rng = new Random(1071);
        for (int i = 0; i < 200_000; i++)
        {
            ulong v = (ulong)rng.NextInt64() ^ ((ulong)rng.Next() << 33);
            values.Add(v);
            values.Add(v >> rng.Next(64)); // short sums too, as real ones are
        }
        foreach (ulong v in values)
            Assert.True(Reference(v) == InternetChecksum.Fold(v), $"Fold(0x{v:X}) = 0x{InternetChecksum.Fold(v):X}, expected 0x{Reference(v):X}");
    }

    [Fact]
    public void Ipv4_header_checksum_matches_PacketDotNet()
    {
        var frame = PacketBuilder.Tcp("192.0.2.1", 1234, "198.51.100.7", 80).Ttl(17).Build();
        var header = frame.AsSpan(14, 20);
        var ip = PacketBuilder.ParseIPv4(frame);
        Assert.Equal(ip.Checksum, InternetChecksum.IPv4Header(header));
        Assert.True(InternetChecksum.IPv4HeaderIsValid(header));
        header[8]--;
        Assert.False(InternetChecksum.IPv4HeaderIsValid(header));
    }

    [Fact]
    public void Full_tcp_checksum_matches_PacketDotNet()
    {
        var frame = PacketBuilder.Tcp("10.0.0.1", 5555, "10.0.0.2", 80).Payload(1001).Build();
        var ip = PacketBuilder.ParseIPv4(frame);
        var l4 = frame.AsSpan(34).ToArray();
        ushort stored = BinaryPrimitives.ReadUInt16BigEndian(l4.AsSpan(16));
        BinaryPrimitives.WriteUInt16BigEndian(l4.AsSpan(16), 0);
        ushort sum = InternetChecksum.Add(InternetChecksum.PseudoHeaderSum(0x0A000001, 0x0A000002, 6, l4.Length), InternetChecksum.Sum(l4));
        Assert.Equal(stored, InternetChecksum.Finish(sum));
        Assert.True(ip.Extract<TcpPacket>().ValidTcpChecksum);
    }

    [Fact]
    public void Incremental_updates_equal_a_full_recomputation()
    {
        var rng = new Random(7);
        for (int i = 0; i < 2000; i++)
        {
            var data = new byte[40];
            rng.NextBytes(data);
            BinaryPrimitives.WriteUInt16BigEndian(data.AsSpan(10), 0);
            ushort check = InternetChecksum.Finish(ReferenceChecksum.Sum(data));

            uint oldAddr = BinaryPrimitives.ReadUInt32BigEndian(data.AsSpan(12));
            uint newAddr = (uint)rng.NextInt64(0, uint.MaxValue);
            ushort oldPort = BinaryPrimitives.ReadUInt16BigEndian(data.AsSpan(20));
            ushort newPort = (ushort)rng.Next(0, 65536);
            BinaryPrimitives.WriteUInt32BigEndian(data.AsSpan(12), newAddr);
            BinaryPrimitives.WriteUInt16BigEndian(data.AsSpan(20), newPort);
            ushort updated = InternetChecksum.Update16(InternetChecksum.Update32(check, oldAddr, newAddr), oldPort, newPort);

            // a checksum verifies when the data plus the field sums to 0xFFFF (either zero representation)
            BinaryPrimitives.WriteUInt16BigEndian(data.AsSpan(10), updated);
            Assert.Equal(0xFFFF, ReferenceChecksum.Sum(data));
        }
    }

    [Fact]
    public void Pseudo_header_sum_equals_what_a_partial_checksum_sender_writes()
    {
        var frame = PacketBuilder.Udp("10.10.0.2", 33000, "10.10.0.1", 53).Payload(20).Checksum(PacketBuilder.ChecksumKind.Partial).Build();
        ushort field = BinaryPrimitives.ReadUInt16BigEndian(frame.AsSpan(34 + 6));
        Assert.Equal(field, InternetChecksum.PseudoHeaderSum(0x0A0A0002, 0x0A0A0001, 17, 28));
    }
}
