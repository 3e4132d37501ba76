using System.CommandLine;
using ZonLb.Cli.Commands;

namespace ZonLb.Cli;

public static class Program
{
    public static int Main(string[] args)
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
        var parsed = root.Parse(args);
        int exit = parsed.Invoke();
        // Usage errors (unknown option, missing --config) are configuration errors too.
        return parsed.Errors.Count > 0 ? ExitCodes.ConfigError : exit;
    }
}
