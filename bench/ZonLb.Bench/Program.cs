using BenchmarkDotNet.Running;

namespace ZonLb.Bench;

public static class Program
{
    /// <summary>
    /// dotnet run -c Release --project bench/ZonLb.Bench -- --filter '*'
    /// --loop SECONDS: runs the established-flow pipeline (IPv4 TCP, 64 B) in a plain loop, for a profiler
    /// (DOTNET_PerfMapEnabled=1 perf record -g dotnet ZonLb.Bench.dll --loop 5).
    /// </summary>
    public static void Main(string[] args)
    {
        if (args is ["--loop", var s])
        {
            var b = new PipelineBenchmarks { FrameLength = 64, Protocol = "tcp", Partial = false };
            b.Setup();
            double seconds = double.Parse(s, System.Globalization.CultureInfo.InvariantCulture);
            var clock = System.Diagnostics.Stopwatch.StartNew();
            long packets = 0, warmPackets = 0;
            double warmNs = 0;
            while (clock.Elapsed.TotalSeconds < seconds)
            {
                packets += b.EstablishedBothDirections();
                if (warmNs == 0 && clock.Elapsed.TotalSeconds >= seconds / 2)
                {
                    // the second half only: by then tiered compilation has settled
                    warmNs = clock.Elapsed.TotalNanoseconds;
                    warmPackets = packets;
                }
            }
            Console.WriteLine($"{packets} packets, {(clock.Elapsed.TotalNanoseconds - warmNs) / (packets - warmPackets):F1} ns/packet over the second half");
            return;
        }
        BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
    }
}
