using System.Net;
using ZonLb.Engine;
using ZonLb.Engine.Configuration;
using ZonLb.Engine.Packets;

// ZonLb.Engine is Linux-only (AF_XDP, XDP, netlink), and says so: a consumer declares it too.
[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]

// Builds a load balancer from code (web: VIP:80 -> backend:8080 over lbc/lbs), waits until it has forwarded
// traffic both ways and the traffic has then been idle for a second (or 30 s), prints its counters and stops.
// Exit 0 only when traffic went both ways and every UMEM frame is accounted for. Usage: PackageConsumer VIP BACKEND (run inside the load balancer's namespace).
if (args.Length != 2)
{
    Console.Error.WriteLine("usage: PackageConsumer VIP BACKEND");
    return 2;
}
var config = new LoadBalancerConfig { ControlSocket = $"/tmp/zonlb-consumer-{Environment.ProcessId}.sock" };
config.Interfaces.Add(new InterfaceConfig { Name = "lbc" });
config.Interfaces.Add(new InterfaceConfig { Name = "lbs" });
var web = new ServiceConfig { Name = "web", Vip = IPAddress.Parse(args[0]), Protocol = IpProtocol.Tcp, Port = 80 };
web.Backends.Add(new BackendConfig { Address = IPAddress.Parse(args[1]), Port = 8080 });
config.Services.Add(web);

using var lb = LoadBalancer.Start(config, line => Console.WriteLine($"engine: {line}"));
Console.WriteLine("consumer: running");
var until = DateTime.UtcNow.AddSeconds(30);
CounterSnapshot c;
while ((c = lb.ReadCounters()).ToClient == 0 && DateTime.UtcNow < until)
    await Task.Delay(100);
// then until the traffic has been idle for a second, so the client's exchange finishes before we stop
long seen = -1;
while (c.ToClient != seen && DateTime.UtcNow < until)
{
    seen = c.ToClient;
    await Task.Delay(1000);
    c = lb.ReadCounters();
}
Console.WriteLine($"consumer: forwarded to_backend={c.ToBackend} to_client={c.ToClient} new_connections={c.NewConnections} drops: {c.FormatDrops()}");
var frames = lb.Stop();
Console.WriteLine($"consumer: {frames}");
return c.ToBackend > 0 && c.ToClient > 0 && frames.Unaccounted == 0 ? 0 : 1;
