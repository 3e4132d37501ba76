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
            var clock = System.Diagnostics.Stopwatch.StartNew();
            long packets = 0;
            while (clock.Elapsed.TotalSeconds < double.Parse(s, System.Globalization.CultureInfo.InvariantCulture))
                packets += b.EstablishedBothDirections();
            Console.WriteLine($"{packets} packets, {clock.Elapsed.TotalNanoseconds / packets:F1} ns/packet");
            return;
        }
        BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
    }
}
