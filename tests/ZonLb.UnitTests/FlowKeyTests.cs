using ZonLb.Engine.Flows;
using ZonLb.Engine.Packets;

namespace ZonLb.UnitTests;

/// <summary>The connection table's hash against chosen tuples (hash flooding).</summary>
public class FlowKeyTests
{
    /// <summary>
    /// A spoofed flood controls the source address and port. Against the table's hash as it was, unkeyed (the
    /// addresses and the ports each multiplied by a public constant and XORed), tuples can be built that collide in
    /// all 64 bits: source ports 256 apart give products that agree in their low 32 bits, and the source address
    /// cancels the high ones. 250 such tuples are built and shown to collide under that function; the keyed hash
    /// spreads them.
    /// </summary>
    [Fact]
    public void Tuples_built_to_collide_under_an_unkeyed_hash_get_distinct_hashes()
    {
        const ulong K1 = 0x9E3779B97F4A7C15UL;
        var vip = IpAddr.Parse("10.10.0.1");
        uint firstSource = 0x0B000001;
        ulong Ports(ushort sport) => ((ulong)sport << 24) | (80UL << 8) | (byte)IpProtocol.Tcp;
        var keys = new List<FlowKey>();
        var unkeyed = new HashSet<ulong>();
        for (int k = 0; k < 250; k++)
        {
            ushort sport = (ushort)(1000 + 256 * k);
            ulong diff = (Ports(sport) * K1) ^ (Ports(1000) * K1); // low 32 bits are 0
            Assert.Equal(0UL, diff & 0xFFFFFFFF);
            uint source = firstSource ^ (uint)(diff >> 32);
            keys.Add(new FlowKey(IpAddr.FromV4(source), vip, sport, 80, IpProtocol.Tcp));
            // the unkeyed function's state before its final multiply: (source << 32) ^ (ports * K1), destination constant
            unkeyed.Add(((ulong)source << 32) ^ (Ports(sport) * K1));
        }
        Assert.Single(unkeyed); // the construction works: all 250 collide there

        var hashes = keys.Select(k => k.GetHashCode()).ToHashSet();
        Assert.True(hashes.Count >= 249, $"{hashes.Count} distinct hashes for 250 chosen tuples");
        var slots = keys.Select(k => k.GetHashCode() & 0xFFFF).ToHashSet(); // the index bits of a 64k-slot index
        Assert.True(slots.Count >= 240, $"{slots.Count} distinct slots of 65,536 for 250 chosen tuples");
    }

    [Fact]
    public void The_fast_lanes_ipv4_hash_is_the_keys_hash()
    {
        var rng = new Random(7);
        for (int i = 0; i < 1000; i++)
        {
            uint src = (uint)rng.Next(), dst = (uint)rng.Next();
            ushort sp = (ushort)rng.Next(65536), dp = (ushort)rng.Next(65536);
            var protocol = i % 2 == 0 ? IpProtocol.Tcp : IpProtocol.Udp;
            Assert.Equal(new FlowKey(IpAddr.FromV4(src), IpAddr.FromV4(dst), sp, dp, protocol).GetHashCode(),
                FlowKey.HashV4(src, dst, sp, dp, protocol));
        }
    }
}
