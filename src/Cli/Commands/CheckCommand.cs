using System.CommandLine;
using ZonLb.Engine.Configuration;
using ZonLb.Native.Netlink;

namespace ZonLb.Cli.Commands;

/// <summary>`check --config FILE`: validates a configuration without attaching anything.</summary>
public static class CheckCommand
{
    public static Command Create()
    {
        var config = new Option<string>("--config", "-c") { HelpName = "FILE", Description = "The TOML configuration file to validate.", Required = true };
        var offline = new Option<bool>("--offline") { Description = "Do not look for the interfaces: validate the file alone (a build host, a CI job)." };
        var cmd = new Command("check",
            "Validate a configuration file: syntax, keys, addresses, ports, duplicates, and that its interfaces exist here.\n" +
            "Exit code 0 when valid, 2 with one line naming the file, key and value otherwise.\n" +
            "Example: zonlb-afxdp check --config /etc/zonlb/zonlb.toml") { config, offline };
        cmd.SetAction(r => Execute(r.GetValue(config)!, r.GetValue(offline), Console.Out, Console.Error));
        return cmd;
    }

    public static int Execute(string path, bool offline, TextWriter stdout, TextWriter stderr)
    {
        try
        {
            var cfg = ConfigLoader.LoadFile(path);
            if (!offline)
            {
                using var nl = new RtNetlink();
                foreach (var ic in cfg.Interfaces)
                    if (nl.GetLink(ic.Name) == null)
                        throw new ConfigException($"{path}: interface.name = \"{ic.Name}\": no such interface in this network namespace (--offline checks the file alone)");
            }
            stdout.WriteLine($"{path}: ok ({cfg.Interfaces.Count} interface(s), {cfg.Services.Count} service(s), " +
                             $"{cfg.Services.Sum(s => s.Backends.Count)} backend(s))");
            return ExitCodes.Ok;
        }
        catch (ConfigException e)
        {
            stderr.WriteLine($"error: {e.Message}");
            return ExitCodes.ConfigError;
        }
    }
}
