using System.Net;
using ZonLb.Engine.Configuration;
using ZonLb.Engine.Packets;
using ZonLb.Engine;

// Embedding ZonLb.Engine: a load balancer built in code, no TOML and no CLI. It serves web on 10.10.0.1:80
// (reached on lbc) with the backend 10.20.0.2:8080 (behind lbs), prints its counters every second for the
// given number of seconds, then stops, which detaches everything. Run it where lbc and lbs live, as root:
//   ip netns exec LB dotnet ZonLb.EmbeddingSample.dll 10

int seconds = args.Length > 0 && int.TryParse(args[0], out int s) ? s : 10;

var config = new LoadBalancerConfig();
config.Interfaces.Add(new InterfaceConfig { Name = "lbc" });
config.Interfaces.Add(new InterfaceConfig { Name = "lbs" });
var web = new ServiceConfig { Name = "web", Vip = IPAddress.Parse("10.10.0.1"), Protocol = IpProtocol.Tcp, Port = 80 };
web.Backends.Add(new BackendConfig { Address = IPAddress.Parse("10.20.0.2"), Port = 8080 });
config.Services.Add(web);

using (var lb = LoadBalancer.Start(config, line => Console.WriteLine($"engine: {line}")))
{
    // events arrive on a thread-pool thread
    lb.BackendStateChanged += (_, e) => Console.WriteLine($"event: backend {e.Address}:{e.Port} of {e.Service} is {e.State} ({e.Reason})");
    lb.ConnectionTableFull += (_, e) => Console.WriteLine($"event: connection table full, {e.Dropped} new flow(s) dropped");
    lb.Warning += (_, w) => Console.WriteLine($"warning: {w}");
    Console.WriteLine($"embedded load balancer running for {seconds} s");
    for (int i = 0; i < seconds; i++)
    {
        await Task.Delay(1000);
        var stats = await lb.GetStatsAsync();
        var service = stats.Services[0];
        Console.WriteLine($"t={i + 1}s rx_packets={stats.RxPackets} tx_packets={stats.TxPackets} " +
                          $"web: new_connections={service.NewConnections} active={service.ActiveConnections} " +
                          $"backend {service.Backends[0].Address}:{service.Backends[0].Port} {service.Backends[0].State}");
    }
    // an operator action through the API: the backend takes no new flows, then takes them again
    await lb.DisableBackendAsync("web", IPAddress.Parse("10.20.0.2"));
    await lb.EnableBackendAsync("web", IPAddress.Parse("10.20.0.2"));
    await Task.Delay(200);
    Console.WriteLine(lb.Stop());
}
Console.WriteLine("stopped and detached");
