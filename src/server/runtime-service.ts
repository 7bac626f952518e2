import type { RuntimeServiceHandlers } from '../api/generated/runtime/v1/RuntimeService.js';
import type { RuntimeInfoService } from '../info/service.js';
import type { SandboxService } from '../sandbox/service.js';
import { unary, unimplemented, unimplementedStream, type WrapOptions } from './wrap.js';

export interface RuntimeServices {
  info: RuntimeInfoService;
  sandboxes: SandboxService;
}

/**
 * The RuntimeService handlers: each one only unpacks its request and calls a service.
 * RPCs not served yet answer UNIMPLEMENTED at once.
 */
export function runtimeServiceHandlers(services: RuntimeServices, options: WrapOptions): RuntimeServiceHandlers {
  const { info, sandboxes } = services;
  return {
    Version: unary('Version', options, async () => info.version()),
    Status: unary('Status', options, async (req) => info.status(req.verbose)),
    RuntimeConfig: unary('RuntimeConfig', options, async () => info.runtimeConfig()),
    UpdateRuntimeConfig: unary('UpdateRuntimeConfig', options, async (req) => info.updateRuntimeConfig(req)),

    RunPodSandbox: unary('RunPodSandbox', options, async (req, ctx) => ({
      pod_sandbox_id: await sandboxes.run(req.config, req.runtime_handler, ctx.log),
    })),
    StopPodSandbox: unary('StopPodSandbox', options, async (req, ctx) => {
      await sandboxes.stop(req.pod_sandbox_id, ctx.log);
      return {};
    }),
    RemovePodSandbox: unary('RemovePodSandbox', options, async (req, ctx) => {
      await sandboxes.remove(req.pod_sandbox_id, ctx.log);
      return {};
    }),
    PodSandboxStatus: unary('PodSandboxStatus', options, (req) => sandboxes.status(req.pod_sandbox_id, req.verbose)),
    ListPodSandbox: unary('ListPodSandbox', options, async (req) => ({ items: sandboxes.list(req.filter) })),
    StreamPodSandboxes: unimplementedStream('StreamPodSandboxes'),
    UpdatePodSandboxResources: unimplemented('UpdatePodSandboxResources'),

    CreateContainer: unimplemented('CreateContainer'),
    StartContainer: unimplemented('StartContainer'),
    StopContainer: unimplemented('StopContainer'),
    RemoveContainer: unimplemented('RemoveContainer'),
    ListContainers: unimplemented('ListContainers'),
    StreamContainers: unimplementedStream('StreamContainers'),
    ContainerStatus: unimplemented('ContainerStatus'),
    UpdateContainerResources: unimplemented('UpdateContainerResources'),
    ReopenContainerLog: unimplemented('ReopenContainerLog'),
    ExecSync: unimplemented('ExecSync'),
    Exec: unimplemented('Exec'),
    Attach: unimplemented('Attach'),
    PortForward: unimplemented('PortForward'),
    ContainerStats: unimplemented('ContainerStats'),
    ListContainerStats: unimplemented('ListContainerStats'),
    StreamContainerStats: unimplementedStream('StreamContainerStats'),
    PodSandboxStats: unimplemented('PodSandboxStats'),
    ListPodSandboxStats: unimplemented('ListPodSandboxStats'),
    StreamPodSandboxStats: unimplementedStream('StreamPodSandboxStats'),
    CheckpointContainer: unimplemented('CheckpointContainer'),
    GetContainerEvents: unimplementedStream('GetContainerEvents'),
    ListMetricDescriptors: unimplemented('ListMetricDescriptors'),
    ListPodSandboxMetrics: unimplemented('ListPodSandboxMetrics'),
    StreamPodSandboxMetrics: unimplementedStream('StreamPodSandboxMetrics'),
  };
}
