using System.CommandLine;
using ZonLb.Cli.Commands;

namespace ZonLb.Cli;

public static class Program
{
    /// <summary>
    /// Runtime settings `run` needs that the .NET runtime reads from the environment only, so `run` starts itself
    /// again once with them set (same PID, same arguments); a variable already set is left as it is.
    /// <list type="bullet">
    /// <item>DOTNET_GCgen0size, 64 MiB (the runtime's default is a few MiB): the control plane's allocations (stats,
    /// metrics, health checks) collect a few times a minute, not several times a second, and every collection stops
    /// the workers for its length. Measured with the control plane busy (bench/e2e/latency.sh): p99.9 of pings
    /// through the VIP 206-390 us with the default, 149-177 with this.</item>
    /// <item>DOTNET_ThreadPool_UnfairSemaphoreSpinLimit, 0: idle thread-pool threads block at once instead of
    /// spinning on sched_yield for work, which took 23 % of a core from the workers' CPUs under 200 control
    /// requests a second (38 % of a core for the process against 15 % without the spinning).</item>
    /// </list>
    /// </summary>
    public static readonly IReadOnlyDictionary<string, string> RunEnvironment = new Dictionary<string, string>
    {
        ["DOTNET_GCgen0size"] = "0x4000000",
        ["DOTNET_ThreadPool_UnfairSemaphoreSpinLimit"] = "0",
    };

    public static int Main(string[] args)
    {
        if (args is ["run", ..])
        {
            var missing = RunEnvironment.Where(kv => Environment.GetEnvironmentVariable(kv.Key) == null).ToDictionary(kv => kv.Key, kv => kv.Value);
            if (missing.Count > 0)
                ZonLb.Native.Interop.Reexec.WithEnvironment(missing); // returns only if it failed: then run as it is
        }
        var root = Root();
        if (args is ["--version"])
        {
            Console.WriteLine(VersionText());
            return ExitCodes.Ok;
        }
        var parsed = root.Parse(args);
        int exit = parsed.Invoke();
        // Usage errors (unknown option, missing --config) are configuration errors too.
        return parsed.Errors.Count > 0 ? ExitCodes.ConfigError : exit;
    }

    /// <summary>Every command, as parsed, helped and completed.</summary>
    public static RootCommand Root()
    {
        var root = new RootCommand(
            "zonlb-afxdp: an L3/L4 load balancer and full-NAT engine on AF_XDP sockets.\n" +
            "Frames for configured service addresses are steered by a small XDP program into AF_XDP sockets and\n" +
            "translated in user space; all other traffic goes to the kernel untouched.")
        {
            RunCommand.Create(),
            CheckCommand.Create(),
            ConfigCommand.Create(),
            TraceCommand.Create(),
            DoctorCommand.Create(),
        };
        foreach (var c in ControlCommands.Create())
            root.Subcommands.Add(c);
        foreach (var c in CompletionCommand.Create(Root))
            root.Subcommands.Add(c);
        root.Subcommands.Add(ManualCommand.Create(Root));
        return root;
    }

    /// <summary>The program's version (major.minor.patch).</summary>
    public static string Version => typeof(Program).Assembly.GetName().Version?.ToString(3) ?? "0.0.0";

    /// <summary>The version, and the libraries and kernel it runs on.</summary>
    private static string VersionText()
    {
        string version = Version;
        string kernel = File.Exists("/proc/sys/kernel/osrelease") ? File.ReadAllText("/proc/sys/kernel/osrelease").Trim() : "unknown";
        string libbpf, libxdp;
        try
        {
            libbpf = ZonLb.Native.Bpf.XdpProgram.LibBpfVersion;
        }
        catch (DllNotFoundException)
        {
            libbpf = "not found";
        }
        libxdp = System.Runtime.InteropServices.NativeLibrary.TryLoad("libxdp.so.1", out var h) ? "libxdp.so.1 present" : "libxdp not found (not needed)";
        if (h != 0)
            System.Runtime.InteropServices.NativeLibrary.Free(h);
        return $"zonlb-afxdp {version} (.NET {Environment.Version}); libbpf {libbpf}; {libxdp}; kernel {kernel}";
    }
}
