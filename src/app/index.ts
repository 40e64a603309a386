export { startService, type Service } from './service.ts';
