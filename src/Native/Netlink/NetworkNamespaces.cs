using ZonLb.Native.Interop;

namespace ZonLb.Native.Netlink;

/// <summary>Runs code inside another network namespace, on a thread of its own (setns changes only the
/// calling thread's namespace, so the caller's stays as it was).</summary>
public static class NetworkNamespaces
{
    /// <summary>The named namespaces (`ip netns`): their files under /run/netns.</summary>
    public static IEnumerable<string> Named() =>
        Directory.Exists("/run/netns") ? Directory.GetFiles("/run/netns") : Array.Empty<string>();

    /// <summary>Runs f in the namespace of nsFile (a /run/netns file or /proc/PID/ns/net).</summary>
    public static T Run<T>(string nsFile, Func<T> f)
    {
        T? result = default;
        Exception? error = null;
        var t = new Thread(() =>
        {
            try
            {
                using var handle = File.OpenHandle(nsFile);
                if (Libc.setns((int)handle.DangerousGetHandle(), Libc.CLONE_NEWNET) != 0)
                    throw NativeException.FromLastError($"setns({nsFile})");
                result = f();
            }
            catch (Exception e)
            {
                error = e;
            }
        });
        t.Start();
        t.Join();
        if (error != null)
            throw error;
        return result!;
    }
}
