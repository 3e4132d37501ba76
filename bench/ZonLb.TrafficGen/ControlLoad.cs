using System.Diagnostics;
using System.Net.Sockets;
using System.Text;

namespace ZonLb.TrafficGen;

/// <summary>
/// Keeps a running zonlb-afxdp's control plane busy, as an operator's tooling would: `stats` asked on the control
/// socket and the metrics endpoint scraped, each HZ times a second, over one connection each (a scraper keeps its
/// connection). Usage (inside the load balancer's namespace):
///   zonlb-trafficgen control-load SOCKET METRICS_URL [--hz 100] [--seconds 0]   (0: until killed)
/// Prints how many of each it made, so a report can say what load it measured under.
/// </summary>
public static class ControlLoad
{
    public static async Task<int> Run(string[] args)
    {
        if (args.Length < 3)
        {
            Console.Error.WriteLine("usage: zonlb-trafficgen control-load SOCKET METRICS_URL [--hz 100] [--seconds 0]");
            return 2;
        }
        string socket = args[1], metrics = args[2];
        int hz = Program.Option(args, "--hz", 100);
        double seconds = Program.Option(args, "--seconds", 0);
        var stop = seconds > 0 ? new CancellationTokenSource(TimeSpan.FromSeconds(seconds)) : new CancellationTokenSource();
        using var sigint = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGINT, c => { c.Cancel = true; stop.Cancel(); });
        using var sigterm = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, c => { c.Cancel = true; stop.Cancel(); });
        var stats = Task.Run(() => Stats(socket, hz, stop.Token));
        var scrapes = Task.Run(() => Scrape(metrics, hz, stop.Token));
        long s = await stats, m = await scrapes;
        Console.WriteLine($"control load: {s} stats requests, {m} metrics scrapes");
        return 0;
    }

    private static async Task<long> Stats(string path, int hz, CancellationToken stop)
    {
        using var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await s.ConnectAsync(new UnixDomainSocketEndPoint(path), stop);
        using var stream = new NetworkStream(s);
        using var reader = new StreamReader(stream, Encoding.UTF8);
        var request = Encoding.UTF8.GetBytes("{\"command\":\"stats\",\"args\":{}}\n");
        return await Paced(hz, stop, async () =>
        {
            await stream.WriteAsync(request, stop);
            await reader.ReadLineAsync(stop);
        });
    }

    private static async Task<long> Scrape(string url, int hz, CancellationToken stop)
    {
        using var http = new HttpClient();
        return await Paced(hz, stop, async () =>
        {
            using var r = await http.GetAsync(url, stop);
            await r.Content.ReadAsByteArrayAsync(stop);
        });
    }

    /// <summary>Calls one at each tick of hz per second (missed ticks are skipped, not bunched); returns how many.</summary>
    private static async Task<long> Paced(int hz, CancellationToken stop, Func<Task> one)
    {
        long n = 0;
        var clock = Stopwatch.StartNew();
        try
        {
            while (!stop.IsCancellationRequested)
            {
                await one();
                n++;
                long due = (long)(n * 1000.0 / hz);
                long wait = due - clock.ElapsedMilliseconds;
                if (wait > 0)
                    await Task.Delay((int)wait, stop);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or HttpRequestException)
        {
        }
        return n;
    }
}
