using BenchmarkDotNet.Running;

namespace ZonLb.Bench;

public static class Program
{
    /// <summary>
    /// dotnet run -c Release --project bench/ZonLb.Bench -- --filter '*'
    /// --loop SECONDS [v6|batches]: runs the established-flow pipeline (IPv4 TCP, 64 B; or IPv6 TCP, 78 B; or
    /// with "batches" the worker's two passes over batches of 64, 1000 connections, with prefetch) in a plain
    /// loop, for a profiler (DOTNET_PerfMapEnabled=1 perf record -g dotnet ZonLb.Bench.dll --loop 5), or for
    /// A/B runs of two builds side by side, each pinned to its own core.
    /// </summary>
    public static void Main(string[] args)
    {
        if (args is ["--loop", var s, ..] && args.Length <= 3)
        {
            // the IPv4 case of PipelineBenchmarks, with "v6" the IPv6 one of PipelinePathBenchmarks (small TCP),
            // with "batches" PipelineTableSizeBenchmarks' (the worker's first pass, prefetch and lane)
            Func<int> run;
            if (args is [_, _, "batches"])
            {
                var t = new PipelineTableSizeBenchmarks { Connections = 1_000, Prefetch = true };
                t.Setup();
                run = t.EstablishedBatches;
            }
            else if (args is [_, _, "v6"])
            {
                var p = new PipelinePathBenchmarks { Family = "v6", Protocol = "tcp", Size = "small" };
                p.Setup();
                run = p.Established;
            }
            else
            {
                var b = new PipelineBenchmarks { FrameLength = 64, Protocol = "tcp", Partial = false };
                b.Setup();
                run = b.EstablishedBothDirections;
            }
            double seconds = double.Parse(s, System.Globalization.CultureInfo.InvariantCulture);
            var clock = System.Diagnostics.Stopwatch.StartNew();
            long packets = 0, warmPackets = 0;
            double warmNs = 0;
            while (clock.Elapsed.TotalSeconds < seconds)
            {
                packets += run();
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
