using System.Collections.Concurrent;
using System.Net;
using ZonLb.Engine;
using ZonLb.Engine.Configuration;
using ZonLb.Engine.Packets;
using ZonLb.Testing;

namespace ZonLb.IntegrationTests;

/// <summary>
/// The library's public API used in-process, as an embedding program would: the load balancer is built in code
/// on a thread inside the load balancer's namespace (its workers inherit the namespace), and real traffic goes
/// through it. (A real embedding program runs wholly inside one namespace, e.g. under ip netns exec.)
/// </summary>
public class EmbeddingApiTests
{
    private static LoadBalancerConfig Config(int capacity = 1 << 20)
    {
        var config = new LoadBalancerConfig { ControlSocket = $"/tmp/zlbt-api-{Environment.ProcessId}.sock" };
        config.Interfaces.Add(new InterfaceConfig { Name = "lbc" });
        config.Interfaces.Add(new InterfaceConfig { Name = "lbs" });
        config.Engine.ConnectionCapacity = capacity;
        var web = new ServiceConfig { Name = "web", Vip = IPAddress.Parse(Topology.Vip), Protocol = IpProtocol.Tcp, Port = 80 };
        web.Backends.Add(new BackendConfig { Address = IPAddress.Parse(Topology.BackendIp), Port = 8080 });
        config.Services.Add(web);
        return config;
    }

    [Fact]
    public async Task A_load_balancer_built_in_code_forwards_reports_events_and_detaches()
    {
        using var t = Topology.Create();
        using var servers = new Backends(t.Backend, Topology.BackendIp, 8080, 5353);
        var events = new BlockingCollection<BackendStateChangedEventArgs>();
        var lb = t.Lb.Run(() => LoadBalancer.Start(Config()));
        try
        {
            lb.BackendStateChanged += (_, e) => events.Add(e);
            Assert.StartsWith("hello from backend", await Clients.HttpGet(t.Client, Topology.Vip, 80));
            var c = lb.ReadCounters();
            Assert.True(c.NewConnections >= 1 && c.ToBackend > 0 && c.ToClient > 0, $"new {c.NewConnections} to_backend {c.ToBackend}");

            await lb.DisableBackendAsync("web", IPAddress.Parse(Topology.BackendIp));
            Assert.True(events.TryTake(out var e, TimeSpan.FromSeconds(5)), "no BackendStateChanged event");
            Assert.Equal(("web", Topology.BackendIp, 8080, "disabled"), (e!.Service, e.Address.ToString(), e.Port, e.State));

            var frames = lb.Stop();
            Assert.False(lb.IsRunning);
            Assert.Equal(0, frames.Unaccounted);
        }
        finally
        {
            Dispose(t, lb);
        }
        Assert.Empty(Topology.InterfacesWithXdp(t.Lb));
    }

    [Fact]
    public async Task A_full_connection_table_raises_its_event()
    {
        using var t = Topology.Create();
        using var servers = new Backends(t.Backend, Topology.BackendIp, 8080, 5353);
        var full = new BlockingCollection<ConnectionTableFullEventArgs>();
        var lb = t.Lb.Run(() => LoadBalancer.Start(Config(capacity: 2)));
        lb.ConnectionTableFull += (_, e) => full.Add(e);
        var open = new List<EchoConnection>();
        try
        {
            for (int i = 0; i < 2; i++)
                open.Add(await EchoConnection.Open(t.Client, Topology.Vip, 80));
            await Assert.ThrowsAnyAsync<Exception>(() => Clients.HttpGet(t.Client, Topology.Vip, 80, timeoutMs: 1500));
            Assert.True(full.TryTake(out var e, TimeSpan.FromSeconds(5)), "no ConnectionTableFull event");
            Assert.True(e!.Dropped >= 1);
            Assert.Equal(2, e.ActiveConnections);
        }
        finally
        {
            foreach (var c in open)
                c.Dispose();
            Dispose(t, lb);
        }
    }

    /// <summary>Detaching talks netlink by interface index: it must run inside the namespace of the interfaces.</summary>
    private static void Dispose(Topology t, LoadBalancer lb) => t.Lb.Run(() =>
    {
        lb.Dispose();
        return 0;
    });
}
