using System.CommandLine;
using ZonLb.Cli.Commands;

namespace ZonLb.Cli;

public static class Program
{
    public static int Main(string[] args)
    {
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
