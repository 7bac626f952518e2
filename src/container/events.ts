import { EventEmitter } from 'node:events';
import type * as wire from '../api/wire.js';

export type ContainerEventType = 'CONTAINER_CREATED_EVENT' | 'CONTAINER_STARTED_EVENT' | 'CONTAINER_STOPPED_EVENT' | 'CONTAINER_DELETED_EVENT';

/**
 * Container lifecycle events for kubelet's evented PLEG. Subscribers get every event emitted
 * after they subscribed, in emission order; a slow subscriber is the transport's concern
 * (gRPC buffers its writes).
 */
export class ContainerEvents {
  private readonly emitter = new EventEmitter();

  constructor() {
    this.emitter.setMaxListeners(0);
  }

  emit(event: wire.ContainerEventResponse): void {
    this.emitter.emit('event', event);
  }

  subscribe(listener: (event: wire.ContainerEventResponse) => void): () => void {
    this.emitter.on('event', listener);
    return () => this.emitter.off('event', listener);
  }
}
