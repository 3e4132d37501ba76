using BenchmarkDotNet.Running;

namespace ZonLb.Bench;

public static class Program
{
    /// <summary>dotnet run -c Release --project bench/ZonLb.Bench -- --filter '*'</summary>
    public static void Main(string[] args) => BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
}
