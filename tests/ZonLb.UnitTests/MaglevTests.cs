using Xunit.Abstractions;
using ZonLb.Engine.Balancing;
using ZonLb.Engine.Configuration;
using ZonLb.Engine.Counters;
using ZonLb.Engine.Packets;
using ZonLb.Engine.Pipeline;
using ZonLb.Engine.Services;
using ZonLb.PipelineTesting;
using static ZonLb.Testing.PacketBuilder;

namespace ZonLb.UnitTests;

public class MaglevTests
{
    private readonly ITestOutputHelper _out;

    public MaglevTests(ITestOutputHelper output) => _out = output;

    private const int Flows = 100_000;

    private static string[] Ids(int n, int first = 0) => Enumerable.Range(first, n).Select(i => $"10.20.{i / 250}.{i % 250 + 2}:8080").ToArray();

    private static int[] Ones(int n) => Enumerable.Repeat(1, n).ToArray();

    /// <summary>Backend identity chosen for each of 100k synthetic flows.</summary>
    private static string[] Assign(MaglevTable t, string[] ids)
    {
        var result = new string[Flows];
        for (int f = 0; f < Flows; f++)
        {
            ulong h = StableHash.Flow(0x0A0A0000u + (uint)(f / 60000), (ushort)(1024 + f % 60000), 6, 0x0A0A0001, 80);
            result[f] = ids[t.Lookup(h)];
        }
        return result;
    }

    private static double MovedFraction(string[] before, string[] after) =>
        Enumerable.Range(0, Flows).Count(i => before[i] != after[i]) / (double)Flows;

    [Theory]
    [InlineData(10)]
    [InlineData(50)]
    public void Removing_one_of_n_backends_moves_about_one_nth_of_new_flow_assignments(int n)
    {
        var ids = Ids(n);
        var before = Assign(new MaglevTable(ids, Ones(n)), ids);
        var weights = Ones(n);
        weights[n / 2] = 0;
        var after = Assign(new MaglevTable(ids, weights), ids);

        double moved = MovedFraction(before, after);
        _out.WriteLine($"removing 1 of {n} backends moved {moved:P2} of {Flows} flows (ideal {1.0 / n:P2})");
        Assert.InRange(moved, 1.0 / n * 0.8, 1.0 / n * 1.5);
        // flows of the removed backend must all move; the others almost never
        Assert.DoesNotContain(ids[n / 2], after);
    }

    [Theory]
    [InlineData(10)]
    [InlineData(50)]
    public void Adding_a_backend_to_n_moves_about_one_in_n_plus_one(int n)
    {
        var ids = Ids(n + 1);
        var before = Assign(new MaglevTable(ids.Take(n).ToArray(), Ones(n)), ids);
        var after = Assign(new MaglevTable(ids, Ones(n + 1)), ids);
        double moved = MovedFraction(before, after);
        _out.WriteLine($"adding 1 backend to {n} moved {moved:P2} of {Flows} flows (ideal {1.0 / (n + 1):P2})");
        Assert.InRange(moved, 1.0 / (n + 1) * 0.8, 1.0 / (n + 1) * 1.5);
    }

    [Fact]
    public void Two_tables_built_from_the_same_backends_agree_slot_for_slot()
    {
        var ids = Ids(7);
        var a = new MaglevTable(ids, new[] { 1, 2, 3, 1, 1, 5, 1 });
        var b = new MaglevTable(ids.ToArray(), new[] { 1, 2, 3, 1, 1, 5, 1 });
        for (ulong h = 0; h < (ulong)a.Size; h++)
            Assert.Equal(a.Lookup(h), b.Lookup(h));
    }

    [Fact]
    public void Two_engine_instances_with_the_same_config_choose_the_same_backend_for_every_flow()
    {
        PacketProcessor Instance()
        {
            var backends = Enumerable.Range(0, 5).Select(i => new ResolvedBackend(IpAddr.FromV4(0x0A140002u + (uint)i), 8080, IpAddr.FromV4(0x0A140001), 1 + i % 2)).ToArray();
            var routes = new FixedRoutes().Subnet("10.20.0.0", 3);
            for (int i = 0; i < 5; i++)
                routes.Neighbor($"10.20.0.{2 + i}", new byte[6]);
            return StandalonePipeline.Create(new[] { new ResolvedService("web", IpAddr.FromV4(0x0A0A0001), IpProtocol.Tcp, 80, backends) },
                new[] { (2, new byte[6]), (3, new byte[6]) }, routes, new EngineOptions(), new EngineCounters());
        }
        var a = Instance();
        var b = Instance();
        var seen = new HashSet<string>();
        for (int i = 0; i < 2000; i++)
        {
            string client = $"192.0.2.{i % 200 + 1}";
            ushort port = (ushort)(20000 + i);
            var fa = Tcp(client, port, "10.10.0.1", 80).Build();
            var fb = Tcp(client, port, "10.10.0.1", 80).Build();
            a.Process(fa, 0, out _);
            b.Process(fb, 0, out _);
            string backend = ParseIPv4(fa).DestinationAddress.ToString();
            Assert.Equal(backend, ParseIPv4(fb).DestinationAddress.ToString());
            seen.Add(backend);
        }
        Assert.Equal(5, seen.Count);
    }

    [Fact]
    public void The_flow_hash_is_the_same_in_every_process()
    {
        // Frozen: instances behind ECMP must agree, so this value must never change between versions.
        Assert.Equal(0x73240DAA1A962869UL, StableHash.Flow(0x0A0A0002, 40000, 6, 0x0A0A0001, 80));
    }

    [Fact]
    public void Slots_are_shared_in_proportion_to_weight()
    {
        var t = new MaglevTable(Ids(3), new[] { 1, 2, 5 });
        var counts = t.SlotCounts(3);
        Assert.Equal(MaglevTable.DefaultSize, counts.Sum());
        Assert.InRange(counts[1] / (double)counts[0], 1.9, 2.1);
        Assert.InRange(counts[2] / (double)counts[0], 4.8, 5.2);
    }

    [Fact]
    public void A_table_whose_backends_all_have_weight_zero_is_empty()
    {
        var t = new MaglevTable(Ids(2), new[] { 0, 0 });
        Assert.True(t.IsEmpty);
        Assert.Equal(-1, t.Lookup(12345));
    }

    [Theory]
    [InlineData(65536)]
    [InlineData(1)]
    [InlineData(100)]
    public void The_table_size_must_be_prime(int size)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new MaglevTable(Ids(2), Ones(2), size));
    }

    [Fact]
    public void An_established_connection_keeps_its_backend_when_the_backend_set_changes()
    {
        var backends = Enumerable.Range(0, 4).Select(i => new ResolvedBackend(IpAddr.FromV4(0x0A140002u + (uint)i), 8080, IpAddr.FromV4(0x0A140001))).ToArray();
        var svc = new ResolvedService("web", IpAddr.FromV4(0x0A0A0001), IpProtocol.Tcp, 80, backends);
        var routes = new FixedRoutes().Subnet("10.10.0.0", 2).Subnet("10.20.0.0", 3)
            .Neighbor("10.20.0.2", new byte[6]).Neighbor("10.20.0.3", new byte[6]).Neighbor("10.20.0.4", new byte[6]).Neighbor("10.20.0.5", new byte[6]);
        var p = StandalonePipeline.Create(new[] { svc }, new[] { (2, new byte[6]), (3, new byte[6]) }, routes, new EngineOptions(), new EngineCounters());

        var first = new Dictionary<ushort, System.Net.IPAddress>();
        for (ushort port = 1000; port < 1200; port++)
        {
            var f = Tcp("10.10.0.2", port, "10.10.0.1", 80).Build();
            p.Process(f, 0, out _);
            first[port] = ParseIPv4(f).DestinationAddress;
        }
        int victim = 1;
        p.SetBackendOut(0, victim, true);
        for (ushort port = 1000; port < 1200; port++)
        {
            var f = Tcp("10.10.0.2", port, "10.10.0.1", 80).TcpFlags(0x10).Build();
            p.Process(f, 1, out _);
            Assert.Equal(first[port], ParseIPv4(f).DestinationAddress);
        }
        for (ushort port = 2000; port < 2200; port++)
        {
            var f = Tcp("10.10.0.2", port, "10.10.0.1", 80).Build();
            p.Process(f, 2, out _);
            Assert.NotEqual("10.20.0.3", ParseIPv4(f).DestinationAddress.ToString());
        }
    }

    [Fact]
    public void New_flows_are_dropped_as_no_backend_when_every_backend_is_out()
    {
        var svc = new ResolvedService("web", IpAddr.FromV4(0x0A0A0001), IpProtocol.Tcp, 80, new[] { new ResolvedBackend(IpAddr.FromV4(0x0A140002), 8080, IpAddr.FromV4(0x0A140001)) });
        var p = StandalonePipeline.Create(new[] { svc }, new[] { (2, new byte[6]), (3, new byte[6]) },
            new FixedRoutes().Subnet("10.20.0.0", 3), new EngineOptions(), new EngineCounters());
        p.SetBackendOut(0, 0, true);
        Assert.Equal(Verdict.Drop, p.Process(Tcp("10.10.0.2", 1, "10.10.0.1", 80).Build(), 0, out _));
        Assert.Equal(1, p.Counters.Drops(DropReason.NoBackend));
    }
}
