using ZonLb.Engine.Flows;
using ZonLb.Engine.Nat;
using ZonLb.Engine.Packets;

namespace ZonLb.UnitTests;

public class ConnectionTableTests
{
    private static Connection Conn(ushort clientPort, ushort natPort) => new()
    {
        ClientIp = IpAddr.FromV4(1), ClientPort = clientPort, VipIp = IpAddr.FromV4(2), VipPort = 80,
        BackendIp = IpAddr.FromV4(3), BackendPort = 8080, SnatIp = IpAddr.FromV4(4), NatPort = natPort, Protocol = IpProtocol.Tcp,
    };

    [Fact]
    public void The_ipv4_hash_from_plain_numbers_equals_the_keys_own_hash()
    {
        var rng = new Random(4);
        for (int i = 0; i < 100_000; i++)
        {
            uint src = (uint)rng.NextInt64(), dst = (uint)rng.NextInt64();
            ushort sport = (ushort)rng.Next(65536), dport = (ushort)rng.Next(65536);
            var protocol = rng.Next(2) == 0 ? IpProtocol.Tcp : IpProtocol.Udp;
            var key = new FlowKey(IpAddr.FromV4(src), IpAddr.FromV4(dst), sport, dport, protocol);
            Assert.Equal(key.GetHashCode(), FlowKey.HashV4(src, dst, sport, dport, protocol));
        }
    }

    [Fact]
    public void A_connection_is_found_from_both_directions()
    {
        var t = new ConnectionTable(8);
        int i = t.Add(Conn(1000, 61000));
        Assert.True(t.TryGetByClient(new FlowKey(IpAddr.FromV4(1), IpAddr.FromV4(2), 1000, 80, IpProtocol.Tcp), out int a));
        Assert.True(t.TryGetByBackend(new FlowKey(IpAddr.FromV4(3), IpAddr.FromV4(4), 8080, 61000, IpProtocol.Tcp), out int b));
        Assert.Equal(i, a);
        Assert.Equal(i, b);
        Assert.False(t.TryGetByClient(new FlowKey(IpAddr.FromV4(1), IpAddr.FromV4(2), 1001, 80, IpProtocol.Tcp), out _));
        Assert.False(t.TryGetByClient(new FlowKey(IpAddr.FromV4(1), IpAddr.FromV4(2), 1000, 80, IpProtocol.Udp), out _));
    }

    [Fact]
    public void An_entry_fills_exactly_two_cache_lines()
    {
        // entries sit in page-aligned memory: at 128 bytes each one is a pair of lines, prefetched as a pair
        Assert.Equal(128, System.Runtime.CompilerServices.Unsafe.SizeOf<Connection>());
    }

    [Fact]
    public void Adding_to_a_full_table_fails()
    {
        var t = new ConnectionTable(2);
        Assert.True(t.Add(Conn(1, 61001)) >= 0);
        Assert.True(t.Add(Conn(2, 61002)) >= 0);
        Assert.Equal(-1, t.Add(Conn(3, 61003)));
        Assert.Equal(2, t.Count);
    }

    [Fact]
    public void A_duplicate_key_is_refused()
    {
        var t = new ConnectionTable(4);
        t.Add(Conn(1, 61001));
        Assert.Equal(-1, t.Add(Conn(1, 61002)));
        Assert.Equal(-1, t.Add(Conn(2, 61001)));
    }

    [Fact]
    public void Removed_entries_are_reused_and_no_longer_found()
    {
        var t = new ConnectionTable(1);
        int i = t.Add(Conn(1, 61001));
        t.Remove(i);
        Assert.False(t.TryGetByClient(new FlowKey(IpAddr.FromV4(1), IpAddr.FromV4(2), 1, 80, IpProtocol.Tcp), out _));
        Assert.True(t.Add(Conn(2, 61002)) >= 0);
    }

    [Fact]
    public void Random_adds_and_removes_agree_with_a_dictionary_while_the_index_wraps_and_shifts()
    {
        // 64 entries in 128 slots, refilled for 20000 operations: probe chains wrap around the end of the
        // index and removals shift them back; every key must stay findable from both sides until removed.
        var t = new ConnectionTable(64);
        var live = new Dictionary<ushort, int>(); // client port -> entry
        var rng = new Random(7);
        for (int op = 0; op < 20000; op++)
        {
            ushort port = (ushort)(1 + rng.Next(200));
            if (live.TryGetValue(port, out int index))
            {
                t.Remove(index);
                live.Remove(port);
            }
            else if (live.Count < 64)
            {
                index = t.Add(Conn(port, (ushort)(60000 + port)));
                Assert.True(index >= 0);
                live[port] = index;
            }
            if (op % 97 != 0)
                continue;
            for (ushort p = 1; p <= 200; p++)
            {
                bool expected = live.TryGetValue(p, out int want);
                Assert.Equal(expected, t.TryGetByClient(Conn(p, 0).ClientKey, out int byClient));
                Assert.Equal(expected, t.TryGetByBackend(Conn(p, (ushort)(60000 + p)).BackendKey, out int byBackend));
                if (expected)
                {
                    Assert.Equal(want, byClient);
                    Assert.Equal(want, byBackend);
                }
            }
        }
        Assert.Equal(live.Count, t.Count);
    }

    [Fact]
    public void A_batch_lookup_finds_what_single_lookups_find()
    {
        var t = new ConnectionTable(1000);
        for (ushort p = 1; p <= 500; p++)
            t.Add(Conn(p, (ushort)(60000 + p)));
        var keys = Enumerable.Range(1, 1000).Select(p => Conn((ushort)p, 0).ClientKey).ToArray();
        var found = new int[keys.Length];
        Assert.Equal(500, t.TryGetByClientBatch(keys, found));
        for (int i = 0; i < keys.Length; i++)
        {
            Assert.Equal(t.TryGetByClient(keys[i], out int single), found[i] >= 0);
            Assert.Equal(single, found[i]);
        }
    }

    [Fact]
    public void Sweep_removes_only_expired_entries_within_its_budget()
    {
        var t = new ConnectionTable(100);
        for (ushort k = 0; k < 100; k++)
        {
            var c = Conn(k, (ushort)(61000 + k));
            c.LastSeen = k < 50 ? 0 : 1000;
            t.Add(c);
        }
        int expired = 0;
        int removed = t.Sweep(2000, 10, _ => 1500, _ => expired++);
        Assert.Equal(10, removed);
        t.Sweep(2000, 1000, _ => 1500, _ => expired++);
        Assert.Equal(50, expired);
        Assert.Equal(50, t.Count);
    }

    [Fact]
    public void Port_allocator_hands_out_each_port_once_until_released()
    {
        var a = new PortAllocator(100, 102);
        var got = new HashSet<ushort>();
        for (int i = 0; i < 3; i++)
        {
            Assert.True(a.TryAllocate(out ushort p));
            Assert.InRange(p, (ushort)100, (ushort)102);
            Assert.True(got.Add(p));
        }
        Assert.False(a.TryAllocate(out _));
        a.Release(101);
        Assert.True(a.TryAllocate(out ushort again));
        Assert.Equal(101, again);
        Assert.Equal(3, a.InUse);
    }
}
